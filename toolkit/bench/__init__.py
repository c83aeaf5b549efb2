"""``ftk bench``: how fast a model is where it will run — on the host (LiteRT) or on adb-connected devices.

:func:`run_bench` is the stage function; ``toolkit.commands.bench`` is its thin CLI. Host measurement lives in
:mod:`toolkit.bench.host`, the adb path in :mod:`toolkit.bench.adb`, the ``benchmark_model`` output parser in
:mod:`toolkit.bench.parse`. Heavy imports (ai_edge_litert, torch, adb_shell, matplotlib) happen inside functions.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from toolkit.bench.adb import AdbBenchOptions, bench_adb
from toolkit.bench.host import bench_host, host_environment
from toolkit.bench.options import parse_cpus, parse_threads
from toolkit.constants import DEFAULT_THREADS, pyplot
from toolkit.errors import CheckFailed, DeviceError, InputError
from toolkit.io import atomic_path, check_outputs_free, ensure_writable_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

BENCH_JSON = "bench.json"
LATENCY_PNG = "latency.png"
BENCH_FORMAT = "ftk.bench/1"


@dataclass
class BenchResult:
    device: str  # "host" | "adb"
    entries: list[Any]  # list[BenchEntry]
    environment: dict[str, Any] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)  # adb: facts, push throughput, errors per serial
    settings: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    complete: bool = True
    wall_s: float | None = None
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self, with_samples: bool = True) -> dict[str, Any]:
        return {
            "format": BENCH_FORMAT,
            "device": self.device,
            "complete": self.complete,
            "errors": self.errors,
            "created_at": self.created_at,
            "wall_s": self.wall_s,
            "settings": self.settings,
            "environment": self.environment,
            "devices": self.devices,
            "entries": [e.to_dict(with_samples) for e in self.entries],
            "outputs": self.outputs,
        }


def run_bench(
    models: Sequence[str | Path],
    device: str = "host",
    threads: Sequence[int] | str = (DEFAULT_THREADS,),
    warmup: int = 5,
    runs: int = 50,
    min_time_s: float | None = None,
    checkpoint: str | Path | None = None,
    serials: Sequence[str] = (),
    benchmark_binary: str | Path | None = None,
    adb_client: str = "python",
    device_python: str | None = None,
    repeats: int = 3,
    cooldown_s: float = 2.0,
    delegate: str = "cpu",
    cpus: str | None = None,
    out_dir: str | Path | None = None,
    csv_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    overwrite: bool = False,
    measure_rss: bool = True,
    progress: bool = False,
) -> BenchResult:
    """Benchmark ``models`` on the host or on adb devices; write bench.json / CSV / PNG where asked.

    adb devices that fail or disappear mid-run do not lose what was measured: the result (and bench.json) keeps the
    finished entries with ``complete: false`` and the error, and then :class:`DeviceError` is raised.
    """
    started = time.perf_counter()
    thread_list = parse_threads(threads)
    cpus = parse_cpus(cpus)
    model_paths = _checked_request(models, device, min_time_s, checkpoint)
    outputs = _output_paths(out_dir, csv_path, plot_path)
    check_outputs_free(list(outputs.values()), overwrite)

    settings = {"threads": thread_list, "warmup": warmup, "runs": runs, "min_time_s": min_time_s}
    if device == "host":
        result = _bench_on_host(model_paths, settings, checkpoint, measure_rss, progress)
    else:
        settings.update({"repeats": repeats, "cooldown_s": cooldown_s, "delegate": delegate, "cpus": cpus,
                         "adb_client": adb_client, "serials": list(serials)})
        result = _bench_on_adb(model_paths, settings, benchmark_binary, device_python,
                               pull_to=Path(out_dir) / "device_logs" if out_dir is not None else None)
    result.wall_s = round(time.perf_counter() - started, 3)
    write_outputs(result, outputs)
    _raise_if_devices_failed(result, outputs)
    _raise_if_runs_failed(result, outputs)
    return result


def _checked_request(models: Sequence[str | Path], device: str, min_time_s: float | None,
                     checkpoint: str | Path | None) -> list[Path]:
    """The model paths, once the request makes sense (InputError before anything is measured or written)."""
    if device not in ("host", "adb"):
        raise InputError(f"--device must be host or adb, got {device!r}")
    if min_time_s is not None and min_time_s <= 0:
        raise InputError(f"--min-time must be > 0 seconds, got {min_time_s}")
    model_paths = [Path(m) for m in models]
    for p in model_paths:
        if not p.is_file():
            raise InputError(f"model not found: {p}")
        if p.suffix.lower() != ".tflite":
            raise InputError(f"{p} is not a .tflite file", hint="export it first with `ftk export`")
    if checkpoint is not None and device != "host":
        raise InputError("--checkpoint (PyTorch eager baseline) runs on the host only")
    if not model_paths and checkpoint is None:
        raise InputError("nothing to benchmark", hint="pass one or more .tflite files")
    return model_paths


def _output_paths(out_dir: str | Path | None, csv_path: str | Path | None,
                  plot_path: str | Path | None) -> dict[str, Path]:
    """{"json", "plot", "csv"} -> path, for those asked: out_dir gets bench.json and (unless placed) the plot."""
    outputs: dict[str, Path] = {}
    if out_dir is not None:
        outputs["json"] = Path(out_dir) / BENCH_JSON
        outputs["plot"] = Path(plot_path) if plot_path else Path(out_dir) / LATENCY_PNG
    elif plot_path:
        outputs["plot"] = Path(plot_path)
    if csv_path:
        outputs["csv"] = Path(csv_path)
    return outputs


def _bench_on_host(model_paths: list[Path], settings: dict[str, Any], checkpoint: str | Path | None,
                   measure_rss: bool, progress: bool) -> BenchResult:
    result = BenchResult(device="host", entries=[], settings=settings)
    result.environment = host_environment(with_torch=checkpoint is not None)
    bar = _progress_bar(progress, settings["runs"])
    try:
        result.entries = bench_host(model_paths, settings["threads"], warmup=settings["warmup"],
                                    runs=settings["runs"], min_time_s=settings["min_time_s"], checkpoint=checkpoint,
                                    measure_rss=measure_rss, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    return result


def _bench_on_adb(model_paths: list[Path], settings: dict[str, Any], benchmark_binary: str | Path | None,
                  device_python: str | None, pull_to: Path | None) -> BenchResult:
    """Every serial in ``settings``; a device that fails keeps what it measured (``complete`` says so)."""
    result = BenchResult(device="adb", entries=[], settings=settings)
    result.environment = host_environment()
    opts = AdbBenchOptions(**{k: settings[k] for k in ("threads", "warmup", "runs", "min_time_s", "repeats",
                                                       "cooldown_s", "delegate", "cpus", "adb_client")},
                           benchmark_binary=benchmark_binary, device_python=device_python, pull_to=pull_to)
    runs_by_device = bench_adb(list(settings["serials"]), model_paths, opts,
                               on_entry=lambda e: log.info("%s: %s @ %d threads %s", e.device, e.model, e.threads,
                                                           "failed" if "error" in e.extra else "done"))
    for dev in runs_by_device:
        _record_device(result, dev)
    result.complete = not result.errors  # a device that failed, or a run that did: the table has holes
    return result


def _record_device(result: BenchResult, dev) -> None:
    """One device's entries, facts and errors (its own and its entries') into ``result``."""
    result.entries.extend(dev.entries)
    result.devices.append({"serial": dev.serial, "facts": dev.facts, "push": dev.push, "error": dev.error,
                           "pulled": dev.pulled, "wall_s": dev.wall_s})
    if dev.error:
        result.errors.append(f"{dev.serial}: {dev.error}")
    for e in dev.entries:
        if "error" in e.extra:
            result.errors.append(f"{dev.serial}: {e.model} @ {e.threads} threads: {e.extra['error']}")


def _raise_if_devices_failed(result: BenchResult, outputs: dict[str, Path]) -> None:
    """DeviceError after the outputs are written, so the partial results are on disk."""
    failed = [d for d in result.devices if d.get("error")]
    if failed:
        where = f"; partial results in {outputs['json']}" if "json" in outputs else ""
        measured = len(result.entries)
        raise DeviceError(
            f"{len(failed)} of {len(result.devices)} device(s) failed ({failed[0]['serial']}: {failed[0]['error']}); "
            f"{measured} measurement(s) kept{where}")


def _raise_if_runs_failed(result: BenchResult, outputs: dict[str, Path]) -> None:
    """CheckFailed (exit 1) when the devices answered but some benchmark runs on them failed (a binary or
    interpreter that does not start, a model the runtime refuses): the latency table is not what was asked for."""
    failed = [e for e in result.entries if "error" in e.extra]
    if failed:
        where = f"; results in {outputs['json']}" if "json" in outputs else ""
        first = failed[0]
        raise CheckFailed(f"{len(failed)} of {len(result.entries)} benchmark runs failed ({first.device}: "
                          f"{first.model} @ {first.threads} threads: {str(first.extra['error'])[:300]}){where}")


def _progress_bar(enabled: bool, runs: int):
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(total=runs, desc="timed rounds", unit="round", leave=False)

    class _Adapter:
        def update(self, rounds: int, total: int) -> None:
            bar.total = max(total, rounds)
            bar.n = rounds
            bar.refresh()

        def close(self) -> None:
            bar.close()

    return _Adapter()


# --- outputs ---------------------------------------------------------------------------------------------------------
TABLE_COLUMNS = ["device", "model", "backend", "threads", "median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
                 "min_ms", "n", "load_ms", "first_ms", "size_mib", "peak_rss_mib"]


def entry_rows(result: BenchResult) -> list[dict[str, Any]]:
    rows = []
    for e in result.entries:
        lat = e.latency
        rows.append({
            "device": e.device, "model": e.model, "backend": e.backend, "threads": e.threads,
            "median_ms": lat.median_ms if lat else None, "p90_ms": lat.p90_ms if lat else None,
            "p99_ms": lat.p99_ms if lat else None, "mean_ms": lat.mean_ms if lat else None,
            "std_ms": lat.std_ms if lat else None, "min_ms": lat.min_ms if lat else None,
            "n": lat.n if lat else 0, "load_ms": e.load_ms, "first_ms": e.first_inference_ms,
            "size_mib": None if e.file_size_bytes is None else e.file_size_bytes / 2**20,
            "peak_rss_mib": e.peak_rss_mb, "sha256": e.sha256,  # bench.json's *_rss_mb are MiB (KiB / 1024)
        })
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def cpu_lines(result: BenchResult) -> list[str]:
    """Where it ran: the CPU model and its int8 dot-product instructions (int8 speed depends on them)."""
    lines = []
    if result.device == "host" and result.environment.get("cpu_info"):
        lines.append(f"host CPU: {result.environment['cpu_info']['line']}")
    for dev in result.devices:
        cpu = (dev.get("facts") or {}).get("cpu")
        if cpu:
            lines.append(f"{dev['serial']} CPU: {cpu['line']}")
    return lines


def format_table(result: BenchResult) -> str:
    rows = entry_rows(result)
    cells = [TABLE_COLUMNS] + [[_fmt(r[c]) for c in TABLE_COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) if i >= 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines[:0] = cpu_lines(result)
    if result.errors:
        lines.append("")
        lines += [f"error: {err}" for err in result.errors]
    return "\n".join(lines)


def format_csv(result: BenchResult) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS + ["sha256"])
    writer.writeheader()
    for row in entry_rows(result):  # milliseconds to 0.1 us, MiB to 1 KiB: not 57.120000000000005
        writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def write_plot(result: BenchResult, path: Path) -> None:
    """Median latency bar per model x threads (x device), whiskers min..p90; PNG via the Agg backend.

    Horizontal bars (long model names stay readable, one per line) on a log axis when the slowest is more than 20x
    the fastest: PyTorch eager next to a small .tflite would otherwise flatten every other bar.
    """
    plt = pyplot()

    rows = [r for r in entry_rows(result) if r["median_ms"] is not None]
    labels = [f"{r['model']} ({r['device']}, {r['threads']} thread{'s' if r['threads'] != 1 else ''})" for r in rows]
    medians = [r["median_ms"] for r in rows]
    upper = [max(0.0, (r["p90_ms"] or r["median_ms"]) - r["median_ms"]) for r in rows]
    lower = [max(0.0, r["median_ms"] - (r["min_ms"] if r["min_ms"] is not None else r["median_ms"])) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)))
    colors = ["#4C72B0" if r["backend"] == "litert" else "#DD8452" if r["backend"] == "pytorch-eager" else "#55A868"
              for r in rows]
    ax.barh(range(len(rows)), medians, xerr=[lower, upper], capsize=3, color=colors)
    for i, r in enumerate(rows):
        tip = r["p90_ms"] or r["median_ms"]
        ax.annotate(f"{r['median_ms']:.2f} ms", (tip, i), textcoords="offset points", xytext=(4, 0), va="center",
                    fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()  # in table order, top to bottom
    if medians and max(medians) > 20 * max(min(medians), 1e-9):
        ax.set_xscale("log")
        ax.set_xlabel("latency per inference (ms, log scale)")
    else:
        ax.set_xlabel("latency per inference (ms)")
    ax.margins(x=0.15)
    ax.set_title(f"ftk bench ({result.device}): median, whiskers min..p90")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_outputs(result: BenchResult, outputs: dict[str, Path]) -> None:
    result.outputs = {k: str(v) for k, v in outputs.items()}
    if "plot" in outputs and any(e.latency for e in result.entries):
        write_plot(result, outputs["plot"])
    elif "plot" in outputs:
        result.outputs.pop("plot")
    if "csv" in outputs:
        write_text_atomic(outputs["csv"], format_csv(result))
    if "json" in outputs:
        ensure_writable_dir(outputs["json"].parent)
        write_json_atomic(outputs["json"], result.to_dict())


__all__ = ["BenchResult", "run_bench", "format_table", "format_csv", "write_plot", "parse_threads"]
