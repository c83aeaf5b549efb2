#!/usr/bin/env python3
"""A stand-in for TensorFlow Lite's ``benchmark_model`` on the x86_64 loopback test "device".

The loopback adbd used in the tests runs shell commands on the host, where there is no ``benchmark_model``; this
script accepts its main flags, runs the model through the real LiteRT interpreter (ai-edge-litert) the same way
(``warmup_runs``/``warmup_min_secs``, then ``num_runs``/``min_secs`` capped by ``max_secs``, ``run_delay``
between runs) and prints the same lines as current builds (``INFO: `` prefixed, on stderr), so ftk's
push -> run -> parse path runs end to end. On a phone the real ``benchmark_model`` for the phone's ABI is used.

Only the CPU paths exist here: ``--use_gpu``/``--use_nnapi`` fail like a build without those delegates.
"""

from __future__ import annotations

import math
import os
import sys
import time

BOOL_FLAGS = {"use_xnnpack", "use_gpu", "use_nnapi", "enable_op_profiling", "verbose", "use_caching",
              "print_preinvoke_state", "print_postinvoke_state", "report_peak_memory_footprint"}
NUMBER_FLAGS = {"num_threads": int, "num_runs": int, "warmup_runs": int, "min_secs": float, "warmup_min_secs": float,
                "max_secs": float, "run_delay": float}
STRING_FLAGS = {"graph", "input_layer", "input_layer_shape", "input_layer_value_range", "benchmark_name",
                "output_prefix", "delegate"}
DEFAULTS = {"num_threads": -1, "num_runs": 50, "warmup_runs": 1, "min_secs": 1.0, "warmup_min_secs": 0.5,
            "max_secs": 150.0, "run_delay": -1.0, "use_xnnpack": None, "use_gpu": False, "use_nnapi": False}


def log(message: str) -> None:
    print(f"INFO: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)


def parse_flags(argv: list[str]) -> dict:
    flags = dict(DEFAULTS)
    unconsumed = []
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg and arg[2:] not in BOOL_FLAGS:
            unconsumed.append(arg)
            continue
        name, _, value = arg[2:].partition("=")
        try:
            if name in BOOL_FLAGS:
                flags[name] = value.lower() in ("", "1", "true", "yes")
            elif name in NUMBER_FLAGS:
                flags[name] = NUMBER_FLAGS[name](value)
            elif name in STRING_FLAGS:
                flags[name] = value
            else:
                unconsumed.append(arg)
        except ValueError:
            error(f"Failed to parse the flag {arg!r}")
            raise SystemExit(1)
    if unconsumed:
        error(f"Unconsumed cmdline flags: {' '.join(unconsumed)}")
        raise SystemExit(1)
    return flags


def vm_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def run_phase(interpreter, min_runs: int, min_secs: float, max_secs: float, delay: float) -> list[int]:
    """Like benchmark_model's Run(): at least ``min_runs`` and ``min_secs``, but stop after ``max_secs``."""
    samples: list[int] = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if samples and elapsed >= max_secs:
            break
        if len(samples) >= min_runs and elapsed >= min_secs:
            break
        t0 = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - t0) // 1000)
        if delay > 0:
            time.sleep(delay)
    return samples


def stat_line(samples: list[int]) -> str:
    n = len(samples)
    avg = sum(samples) / n
    std = math.sqrt(sum((s - avg) ** 2 for s in samples) / n)  # population std, as the tool's Stat class
    ordered = sorted(samples)
    median = ordered[n // 2]
    return (f"count={n} first={samples[0]} curr={samples[-1]} min={ordered[0]} max={ordered[-1]} "
            f"avg={avg:g} std={int(round(std))} p5={ordered[int(0.05 * (n - 1))]} median={median} "
            f"p95={ordered[int(0.95 * (n - 1))]}")


def main(argv: list[str]) -> int:
    flags = parse_flags(argv)
    log("STARTING!")
    graph = flags.get("graph")
    if not graph:
        error("Please specify the name of your TF Lite input file with --graph")
        return 1
    log(f"Graph: [{graph}]")
    log(f"Num threads: [{flags['num_threads']}]")
    if flags["use_gpu"] or flags["use_nnapi"]:
        error("GPU/NNAPI delegates are not available in the x86_64 stand-in benchmark runner")
        return 1
    try:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        error(f"the stand-in needs numpy and ai-edge-litert: {exc}")
        return 1
    if not os.path.isfile(graph):
        error(f"Could not open '{graph}'.")
        return 1
    log(f"Loaded model {graph}")
    log(f"The input model file size (MB): {os.path.getsize(graph) / 1e6:g}")
    threads = flags["num_threads"] if flags["num_threads"] > 0 else None
    resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if flags["use_xnnpack"] is False
                else OpResolverType.AUTO)
    t0 = time.perf_counter_ns()
    try:
        interpreter = Interpreter(model_path=graph, num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        error(f"Failed to construct interpreter: {str(exc).splitlines()[0]}")
        return 1
    init_us = (time.perf_counter_ns() - t0) // 1000
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        shape = tuple(int(v) for v in detail["shape"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
        else:
            value = rng.uniform(0.0, 255.0, size=shape).astype(dtype)  # image models: raw pixel range
        interpreter.set_tensor(detail["index"], value)
    init_rss = vm_kb("VmHWM")
    log(f"Initialized session in {init_us / 1000:g}ms.")
    log(f"Running benchmark for at least {flags['warmup_runs']} iterations and at least "
        f"{flags['warmup_min_secs']:g} seconds but terminate if exceeding {flags['max_secs']:g} seconds.")
    warm = run_phase(interpreter, flags["warmup_runs"], flags["warmup_min_secs"], flags["max_secs"],
                     flags["run_delay"])
    log(stat_line(warm))
    print("", file=sys.stderr)
    log(f"Running benchmark for at least {flags['num_runs']} iterations and at least {flags['min_secs']:g} seconds "
        f"but terminate if exceeding {flags['max_secs']:g} seconds.")
    timed = run_phase(interpreter, flags["num_runs"], flags["min_secs"], flags["max_secs"], flags["run_delay"])
    log(stat_line(timed))
    print("", file=sys.stderr)
    warm_avg = sum(warm) / len(warm)
    timed_avg = sum(timed) / len(timed)
    log(f"Inference timings in us: Init: {init_us}, First inference: {warm[0]}, Warmup (avg): {warm_avg:g}, "
        f"Inference (avg): {timed_avg:g}")
    log("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
        "actual memory footprint of the model at runtime. Take the information at your discretion.")
    peak = vm_kb("VmHWM")
    if init_rss is not None and peak is not None:
        log(f"Peak memory footprint (MB): init={init_rss / 1024:g} overall={peak / 1024:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
