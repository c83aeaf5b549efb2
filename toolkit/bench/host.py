"""Host latency through the real LiteRT interpreter (and an optional PyTorch-eager baseline).

How it measures:

* every (model, threads) pair gets its own interpreter; load time = read + build + ``allocate_tensors``;
* the input is built once from the model's spec (its contract: ``manifest.json`` beside an ftk export, or embedded
  in the file) or, for a foreign model, from its input tensor's shape and dtype; seeded, so runs are repeatable;
* first inference is timed alone, then ``warmup`` untimed runs, then timed runs **round-robin**: one ``invoke()``
  of each pair per round, so drift of the machine (other jobs, thermal, frequency) hits every pair alike;
* only ``invoke()`` is inside the timer (``perf_counter_ns``), as in ``benchmark_model``; the input is set once;
* ``--runs N`` stops after N timed runs per pair; ``--min-time S`` goes on until every pair has S seconds of timed
  runs (and at least N runs);
* the PyTorch-eager baseline runs after the LiteRT pairs (round-robin among its thread counts), not interleaved
  with them: its OpenMP workers spin after each call and would slow the LiteRT call that follows;
* peak RSS comes from a separate child process per model (import the runtime, load, a few runs), read from that
  process's VmHWM: it is the whole process (Python + numpy + runtime + model), so the child's RSS before loading
  the model is recorded too (``baseline_rss_mb``); the difference is the model's share.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from toolkit import __version__, native_logs
from toolkit.bench.cpu import host_cpu
from toolkit.bench.options import parse_threads
from toolkit.checkpoint import load_checkpoint
from toolkit.embedders import load_interpreter
from toolkit.errors import InputError, ModelFileError
from toolkit.io import sha256_file
from toolkit.manifest import contract_for

log = logging.getLogger(__name__)

INPUT_SEED = 0


@dataclass
class LatencyStats:
    """Per-invoke latency in milliseconds over the timed runs."""

    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> "LatencyStats":
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("no latency samples")
        return cls(n=int(ms.size), median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
                   p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()),
                   std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0, min_ms=float(ms.min()),
                   max_ms=float(ms.max()))


@dataclass
class BenchEntry:
    """One model at one thread count on one device."""

    model: str  # label shown in tables: file name, or "pytorch-eager:<checkpoint>"
    path: str
    backend: str  # "litert" | "pytorch-eager" | "benchmark_model" (adb)
    device: str  # "host" or the adb serial
    threads: int
    sha256: str | None = None
    file_size_bytes: int | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency: LatencyStats | None = None
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None  # the same process before the model was loaded
    memory_note: str | None = None
    raw_samples_ms: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, with_samples: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not with_samples:
            d.pop("raw_samples_ms")
        return d


# --- environment ---------------------------------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def host_environment(with_torch: bool = False) -> dict[str, Any]:
    cpu = host_cpu()
    env: dict[str, Any] = {
        "cpu": cpu.model,
        "cpu_info": cpu.to_dict(),  # the int8-deciding features: int8 speed depends on them (toolkit.bench.cpu)
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ai_edge_litert": _version("ai-edge-litert"),
        "ftk": __version__,
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_at_start"] = [round(v, 2) for v in os.getloadavg()]
    if with_torch:
        env["torch"] = _version("torch")
    return env


# --- inputs ----------------------------------------------------------------------------------------------------------
def model_input(input_detail: dict, spec=None, seed: int = INPUT_SEED) -> np.ndarray:
    """A seeded input: raw 0..255 pixels in the spec's NHWC shape when the spec is known, else from the tensor."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in input_detail["shape"])
    dtype = np.dtype(input_detail["dtype"])
    if spec is not None:
        expected = (1, spec.input_size, spec.input_size, 3)
        if shape != expected:
            raise ModelFileError(f"model input is {shape} but its manifest spec says {expected}")
        lo, hi = spec.value_range
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.uniform(0.0, 1.0, size=shape).astype(dtype)


def spec_for(model_path: Path):
    """The model's spec from its contract (verified manifest entry, else embedded in the file), or None."""
    contract = contract_for(model_path)
    return None if contract is None else contract.spec


# --- runners ---------------------------------------------------------------------------------------------------------
class LiteRTRunner:
    """One interpreter for one (model, threads); ``invoke_ns`` times only ``invoke()``."""

    backend = "litert"

    def __init__(self, path: Path, threads: int):
        self.path = path
        self.threads = threads
        spec = spec_for(path)
        t0 = time.perf_counter_ns()
        self.interpreter = load_interpreter(path, threads)
        self.load_ns = time.perf_counter_ns() - t0
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelFileError(f"{path} has {len(inputs)} inputs; ftk bench feeds models with one input")
        self.interpreter.set_tensor(inputs[0]["index"], model_input(inputs[0], spec))
        self._invoke = self.interpreter.invoke

    def invoke_ns(self) -> int:
        t0 = time.perf_counter_ns()
        self._invoke()
        return time.perf_counter_ns() - t0


class TorchEagerRunner:
    """The checkpoint's exported module (:class:`EmbeddingModel`) in PyTorch eager mode, batch 1."""

    backend = "pytorch-eager"

    def __init__(self, checkpoint: Path, threads: int):
        import torch

        from toolkit.models.face_model import embedding_model_from

        self.path = checkpoint
        self.threads = threads
        t0 = time.perf_counter_ns()
        loaded = load_checkpoint(checkpoint)
        self.module = embedding_model_from(loaded.model).eval()
        self.load_ns = time.perf_counter_ns() - t0
        self.sha256 = loaded.sha256
        spec = loaded.model.spec
        detail = {"shape": (1, spec.input_size, spec.input_size, 3), "dtype": np.float32}
        self.input = torch.from_numpy(model_input(detail, spec))
        self._torch = torch

    def invoke_ns(self) -> int:
        torch = self._torch
        if torch.get_num_threads() != self.threads:  # the setting is process-wide; runners interleave
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            t0 = time.perf_counter_ns()
            self.module(self.input)
            return time.perf_counter_ns() - t0


# --- peak RSS in a child process -----------------------------------------------------------------------------------
def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_probe_main(kind: str, path: str, threads: int, runs: int) -> None:
    """Child side: import the runtime, record RSS, load + run the model, print JSON with the high-water mark."""
    if kind == "litert":
        with native_logs.quiet_import():
            import ai_edge_litert.interpreter  # noqa: F401  (the runtime counts in the baseline)

        import toolkit.embedders  # noqa: F401

        baseline = _status_kb("VmRSS")
        runner: Any = LiteRTRunner(Path(path), threads)
    else:
        import torch  # noqa: F401

        import toolkit.checkpoint  # noqa: F401
        import toolkit.models.face_model  # noqa: F401

        baseline = _status_kb("VmRSS")
        runner = TorchEagerRunner(Path(path), threads)
    for _ in range(runs):
        runner.invoke_ns()
    print(json.dumps({"baseline_rss_kb": baseline, "peak_rss_kb": _status_kb("VmHWM")}))


def measure_peak_rss(kind: str, path: Path, threads: int, runs: int = 5, timeout_s: float = 600) -> dict[str, Any]:
    """Load and run the model in a fresh child process and read that process's RSS high-water mark (VmHWM).

    VmHWM belongs to the child's own address space (reset at exec), unlike ``ru_maxrss``, which keeps the
    high-water mark of the forked copy of this (possibly large) parent process.
    """
    argv = [sys.executable, "-m", "toolkit.bench.host", "--rss-probe", kind, str(path), str(threads), str(runs)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"memory_note": f"RSS probe timed out after {timeout_s}s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.strip().splitlines()
        return {"memory_note": f"RSS probe failed ({proc.returncode}): {err[-1][:200] if err else ''}"}
    info = json.loads(lines[-1])
    if info.get("peak_rss_kb") is None:
        return {"memory_note": "peak RSS unavailable (no /proc/self/status on this OS)"}
    baseline = info.get("baseline_rss_kb")
    return {"peak_rss_mb": round(info["peak_rss_kb"] / 1024, 2),
            "baseline_rss_mb": None if baseline is None else round(baseline / 1024, 2),
            "memory_note": "peak RSS (VmHWM) of a child process that imported the runtime, loaded the model and "
                           f"ran it {runs} times; baseline = that process before loading the model"}


# --- the benchmark -------------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    entry: BenchEntry
    runner: Any
    samples: list[int] = field(default_factory=list)
    total_ns: int = 0


def bench_host(models: Sequence[str | Path], threads: Sequence[int] = (1,), warmup: int = 5, runs: int = 50,
               min_time_s: float | None = None, checkpoint: str | Path | None = None, measure_rss: bool = True,
               progress: Callable[[int, int], None] | None = None, max_runs: int = 100_000) -> list[BenchEntry]:
    """Benchmark every model (and the checkpoint in PyTorch eager, if given) at every thread count, round-robin."""
    if not models and checkpoint is None:
        raise InputError("nothing to benchmark", hint="pass one or more .tflite files")
    if runs < 1 or warmup < 0:
        raise InputError(f"--runs must be >= 1 and --warmup >= 0, got runs={runs} warmup={warmup}")
    threads = parse_threads(threads)
    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise InputError(f"model not found: {p}")
    slots: list[_Slot] = []
    hashes: dict[Path, str] = {p: sha256_file(p) for p in paths}
    for t in threads:
        for p in paths:
            runner = LiteRTRunner(p, t)
            entry = BenchEntry(model=p.name, path=str(p), backend=runner.backend, device="host", threads=t,
                               sha256=hashes[p], file_size_bytes=p.stat().st_size, load_ms=runner.load_ns / 1e6)
            slots.append(_Slot(entry, runner))
        if checkpoint is not None:
            runner = TorchEagerRunner(Path(checkpoint), t)
            ck = Path(checkpoint)
            entry = BenchEntry(model=f"pytorch-eager:{ck.name}", path=str(ck), backend=runner.backend, device="host",
                               threads=t, sha256=runner.sha256, file_size_bytes=ck.stat().st_size,
                               load_ms=runner.load_ns / 1e6)
            slots.append(_Slot(entry, runner))
    for slot in slots:
        slot.entry.first_inference_ms = slot.runner.invoke_ns() / 1e6
        for _ in range(warmup):
            slot.runner.invoke_ns()
    min_time_ns = None if min_time_s is None else int(min_time_s * 1e9)

    def done(slot: _Slot) -> bool:
        if len(slot.samples) >= max_runs:
            return True
        if len(slot.samples) < runs:
            return False
        return min_time_ns is None or slot.total_ns >= min_time_ns

    # LiteRT pairs round-robin together; PyTorch eager after them in its own round-robin, because its OpenMP
    # threads keep spinning after each call and would steal the CPU from the LiteRT invoke that follows.
    rounds = 0
    groups = [g for g in ([s for s in slots if s.entry.backend != "pytorch-eager"],
                          [s for s in slots if s.entry.backend == "pytorch-eager"]) if g]
    for group in groups:
        while group and not all(done(s) for s in group):
            for slot in group:  # one invoke per pair per round: drift is shared
                if not done(slot):
                    ns = slot.runner.invoke_ns()
                    slot.samples.append(ns)
                    slot.total_ns += ns
            rounds += 1
            if progress is not None:
                progress(rounds, runs * len(groups))
    for slot in slots:
        slot.entry.latency = LatencyStats.from_ns(slot.samples)
        slot.entry.raw_samples_ms = [round(ns / 1e6, 4) for ns in slot.samples]
        slot.entry.extra["warmup_runs"] = warmup
    entries = [slot.entry for slot in slots]
    del slots  # free the interpreters before the RSS children run
    if measure_rss:
        probes: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in entries:
            kind = "torch" if entry.backend == "pytorch-eager" else "litert"
            key = (kind, entry.path)
            if key not in probes:  # RSS hardly depends on the thread count: one probe per model, first count
                probes[key] = measure_peak_rss(kind, Path(entry.path), entry.threads)
            info = probes[key]
            entry.peak_rss_mb = info.get("peak_rss_mb")
            entry.baseline_rss_mb = info.get("baseline_rss_mb")
            entry.memory_note = info.get("memory_note")
    return entries


if __name__ == "__main__":  # the RSS probe child
    if len(sys.argv) == 6 and sys.argv[1] == "--rss-probe":
        _rss_probe_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit("usage: python -m toolkit.bench.host --rss-probe litert|torch PATH THREADS RUNS")
