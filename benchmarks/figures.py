"""Print the README's measured figures that this machine can recompute cheaply, naming the CPU they belong to.

Usage (run it before changing a figure in README.md or docs/; quote its lines with the CPU line beside them)::

    .venv/bin/python benchmarks/figures.py [--export DIR ...] [--checkpoint CKPT] [--report runs/example/report.json]
                                           [--threads 1 --threads 2] [--runs 50] [--no-tests]

* always: the CPU line (model, int8 dot-product instructions, each int8-deciding feature; ``toolkit.bench.cpu``),
  usable cores and load average, and the test count (``pytest --collect-only``; ``--no-tests`` skips it);
* ``--export DIR`` (an ``ftk export`` folder, repeatable): file sizes in MiB and one interleaved ``ftk bench`` of
  its float32 / float16 / int8 files at each ``--threads``, with the int8/float32 and float16/float32 median ratios
  (``--checkpoint`` adds the PyTorch-eager baseline);
* ``--report FILE`` (a pipeline's report.json, e.g. from ``scripts/main.sh``): the accuracy ladder, parity and
  budget verdict as recorded there (read, not recomputed).

int8 speed depends on the CPU's int8 dot-product instructions, so a ratio printed here holds for the CPU line
printed with it, not in general. Nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.bench import run_bench  # noqa: E402  (after the path: runs from a checkout without installing)
from toolkit.bench.cpu import host_cpu  # noqa: E402
from toolkit.export import ARTIFACT_NAMES  # noqa: E402

PRECISIONS = ("float32", "float16", "int8")


def cpu_figures() -> None:
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU: {host_cpu().line()}")
    print(f"cores usable: {usable}; load average now: {load}")


def test_count() -> None:
    """How many tests `scripts/test.sh` runs (collected, not run: seconds, not minutes)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "tests", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    found = re.search(r"(\d+) tests? collected", done.stdout)
    print(f"tests: {found.group(1)} collected" if found else f"tests: not counted ({done.stdout.strip()[-200:]})")


def export_figures(export: Path, threads: list[int], runs: int, checkpoint: Path | None) -> None:
    files = {p: export / ARTIFACT_NAMES[p] for p in PRECISIONS if (export / ARTIFACT_NAMES[p]).is_file()}
    if not files:
        print(f"{export}: no exported .tflite files")
        return
    sizes = ", ".join(f"{p} {path.stat().st_size / 2**20:.2f} MiB" for p, path in files.items())
    print(f"{export}: files {sizes}")
    result = run_bench(list(files.values()), threads=threads, warmup=5, runs=runs, checkpoint=checkpoint,
                       measure_rss=False)
    medians = {(e.model, e.threads): e.latency.median_ms for e in result.entries if e.latency}
    names = {ARTIFACT_NAMES[p]: p for p in files}
    for t in threads:
        row = [f"{names.get(model, model)} {ms:.3f} ms" for (model, tt), ms in medians.items() if tt == t]
        f32 = medians.get((ARTIFACT_NAMES["float32"], t))
        ratios = [f"{p}/float32 {medians[(ARTIFACT_NAMES[p], t)] / f32:.2f}x" for p in ("int8", "float16")
                  if f32 and (ARTIFACT_NAMES[p], t) in medians]
        print(f"  {t} thread{'s' if t > 1 else ''}: median {', '.join(row)}" + (f"; {', '.join(ratios)}"
                                                                               if ratios else ""))
    print(f"  ({runs} interleaved runs per file; command: ftk bench {' '.join(str(f) for f in files.values())} "
          + " ".join(f"--threads {t}" for t in threads) + f" --runs {runs})")


def report_figures(report_path: Path) -> None:
    report = json.loads(report_path.read_text())
    for row in report.get("ladder", []):
        if "accuracy_mean" in row:
            print(f"ladder {row['model']}: {100 * row['accuracy_mean']:.2f} % ± {100 * row['accuracy_std']:.2f}, "
                  f"TAR@FAR={row.get('far')} {row.get('tar_at_far')}")
    for precision, parity in (report.get("parity") or {}).items():
        if isinstance(parity, dict) and "mean_cosine" in parity:
            print(f"parity {precision}: mean cosine {parity['mean_cosine']:.4f}, min {parity['min_cosine']:.4f}")
    bench_cpu = ((report.get("bench") or {}).get("environment") or {}).get("cpu_info")
    if bench_cpu:
        print(f"its bench ran on: {bench_cpu['line']}")
    if "passed" in report:
        print(f"budget: {'PASS' if report['passed'] else 'FAIL'}; pipeline wall {report.get('wall_seconds')} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, action="append", default=[], help="an ftk export folder (repeatable)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="add the PyTorch-eager baseline")
    parser.add_argument("--report", type=Path, default=None, help="a pipeline report.json to read the ladder from")
    parser.add_argument("--threads", type=int, action="append", default=None, help="thread count (repeatable)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-tests", action="store_true", help="skip the test count")
    args = parser.parse_args()
    cpu_figures()
    if not args.no_tests:
        test_count()
    for export in args.export:
        export_figures(export, args.threads or [1, 2], args.runs, args.checkpoint)
    if args.report is not None:
        report_figures(args.report)


if __name__ == "__main__":
    main()
