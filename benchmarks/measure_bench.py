"""Figures for docs/bench.md: host latency (float32 vs int8), harness overhead, adb loopback push + wall time.

Usage (as root, with adbd installed; nothing here is collected by pytest)::

    .venv/bin/python benchmarks/measure_bench.py EXPORT_DIR [--threads 1,2] [--runs 50] [--skip-adb]

EXPORT_DIR is an ``ftk export`` folder (model_float32.tflite, model_int8.tflite, manifest.json). Prints one
line per figure; the adb part starts the sandboxed adbd from tests/bench/adbd_sandbox.py (never in the host
namespace) and runs ``ftk bench --device adb`` against it with the stand-in runner.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def host_figures(export: Path, threads: str, runs: int) -> None:
    from toolkit.bench import run_bench

    models = [export / "model_float32.tflite", export / "model_int8.tflite"]
    result = run_bench([m for m in models if m.is_file()], threads=threads, warmup=5, runs=runs)
    by = {(e.model, e.threads): e for e in result.entries}
    for (model, t), e in by.items():
        lat = e.latency
        print(f"host {model} threads={t}: median {lat.median_ms:.2f} ms, p90 {lat.p90_ms:.2f}, "
              f"mean {lat.mean_ms:.2f} +- {lat.std_ms:.2f}, min {lat.min_ms:.2f} (n={lat.n}), "
              f"load {e.load_ms:.0f} ms, peak RSS {e.peak_rss_mb} MB (baseline {e.baseline_rss_mb})")
    for t in result.settings["threads"]:
        f32, i8 = by.get(("model_float32.tflite", t)), by.get(("model_int8.tflite", t))
        if f32 and i8:
            print(f"host threads={t}: int8/float32 median ratio {i8.latency.median_ms / f32.latency.median_ms:.2f}")
    print(f"host cpu: {result.environment['cpu']} ({result.environment['usable_cpus']} usable), "
          f"loadavg at start {result.environment.get('loadavg_at_start')}")


def overhead_figure(model: Path, runs: int) -> None:
    """ftk bench's timed call vs a bare invoke loop, alternating blocks so load drift hits both."""
    from toolkit.bench.host import LiteRTRunner

    runner = LiteRTRunner(model, 1)
    for _ in range(5):
        runner.invoke_ns()
    invoke = runner.interpreter.invoke
    bare_blocks, timed_blocks = [], []
    block = max(5, runs // 5)
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(block):
            invoke()
        bare_blocks.append((time.perf_counter_ns() - t0) / block)
        t0 = time.perf_counter_ns()
        for _ in range(block):
            runner.invoke_ns()
        timed_blocks.append((time.perf_counter_ns() - t0) / block)
    bare, timed = np.median(bare_blocks) / 1e6, np.median(timed_blocks) / 1e6
    print(f"harness overhead ({model.name}, 1 thread): bare invoke loop {bare:.3f} ms/call, ftk bench timed call "
          f"{timed:.3f} ms/call, overhead {100 * (timed - bare) / bare:+.2f}%")


def adb_figures(model: Path) -> None:
    from tests.bench.adbd_sandbox import AdbdSandbox, sandbox_unavailable_reason

    if reason := sandbox_unavailable_reason():
        print(f"adb: skipped ({reason})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = AdbdSandbox(Path(tmp) / "adbd.log").start()
        try:
            out = Path(tmp) / "out"
            argv = [sys.executable, "-m", "toolkit.cli", "bench", str(model), "--device", "adb", "--serial",
                    sandbox.serial, "--benchmark-binary", str(REPO / "android_harness/standin_benchmark_model.py"),
                    "--device-python", sys.executable, "--threads", "1", "--runs", "20", "--warmup", "2",
                    "--repeats", "2", "--cooldown", "1", "--out", str(out)]
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"adb: ftk bench failed: {proc.stderr.strip()[-300:]}")
                return
            data = json.loads((out / "bench.json").read_text())
            dev = data["devices"][0]
            e = data["entries"][0]
            print(f"adb loopback: pushed {dev['push']['bytes'] / 1e6:.1f} MB in {dev['push']['seconds']:.2f} s = "
                  f"{dev['push']['mb_per_s']} MB/s; full `ftk bench --device adb` wall {wall:.1f} s "
                  f"(device part {dev['wall_s']:.1f} s: 2 repeats x (2 warm-up + 20 runs), 1 s cool-down); "
                  f"median {e['latency']['median_ms']:.2f} ms via the stand-in")
        finally:
            sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--skip-adb", action="store_true")
    args = parser.parse_args()
    host_figures(args.export, args.threads, args.runs)
    overhead_figure(args.export / "model_float32.tflite", args.runs)
    if not args.skip_adb:
        adb_figures(args.export / "model_float32.tflite")


if __name__ == "__main__":
    main()
