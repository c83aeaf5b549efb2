"""``ftk bench``: a thin click wrapper around :func:`toolkit.bench.run_bench`."""

from __future__ import annotations

import click

from toolkit.commands.common import echo_json, quiet_option
from toolkit.constants import DEFAULT_THREADS, MAX_THREADS


def _is_thread_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 8 and 1 <= int(text) <= MAX_THREADS


def _thread_counts(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[int]:
    """--threads N, repeatable; the old comma list (--threads 1,2) still works and means the same."""
    counts = []
    for value in values:
        items = [item for item in value.replace(" ", "").split(",") if item]
        if not items or not all(_is_thread_count(item) for item in items):
            raise click.BadParameter(f"{value[:80]!r}: a thread count is an integer in 1..{MAX_THREADS} "
                                     "(--threads 1 --threads 2, or the old --threads 1,2)")
        counts += [int(item) for item in items]
    return list(dict.fromkeys(counts))  # each count timed once, in the order given


@click.command("bench")
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(["host", "adb"]), default="host", show_default=True,
              help="Where to run: this machine (LiteRT interpreter) or adb-connected Android devices.")
@click.option("--threads", "threads", multiple=True, default=(str(DEFAULT_THREADS),), show_default=True, metavar="N",
              callback=_thread_counts,
              help="A thread count to benchmark; repeat for several (--threads 1 --threads 4). The old comma list "
                   "(--threads 1,4) means the same.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs before timing.")
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs per model and thread count.")
@click.option("--min-time", "min_time", type=float, default=None,
              help="Keep timing until each model has run this many seconds (at least --runs runs).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Also time this checkpoint in PyTorch eager mode (host only) as a baseline.")
@click.option("--serial", "serials", multiple=True,
              help="adb device serial or host:port; repeat for several devices (run in parallel).")
@click.option("--benchmark-binary", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TensorFlow Lite benchmark_model for the device's ABI (default: $FTK_CACHE_DIR/benchmark_model/<abi>/).")
@click.option("--adb-client", type=click.Choice(["python", "adb"]), default="python", show_default=True,
              help="adb-shell (host:port serials) or the adb command (USB serials).")
@click.option("--device-python", default=None,
              help="Interpreter for a Python stand-in benchmark runner (the loopback test device only).")
@click.option("--repeats", type=int, default=3, show_default=True, help="adb: benchmark_model runs per setting.")
@click.option("--cooldown", type=float, default=2.0, show_default=True, help="adb: seconds between repeats.")
@click.option("--delegate", type=click.Choice(["cpu", "xnnpack", "gpu", "nnapi"]), default="cpu", show_default=True,
              help="adb: benchmark_model delegate flag.")
@click.option("--cpus", default=None,
              help="adb: CPUs to pin to, a taskset hex mask (f0) or a list (4-7); default: the fastest cores.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of the table.")
@click.option("--table-csv", "--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the result table to this CSV file (--out does not). (Old spelling: --csv.)")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the latency bar chart here (default with --out: OUT/latency.png).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder to write bench.json and latency.png into.")
@click.option("--no-rss", is_flag=True, help="Host: skip the per-model peak-RSS child process.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@quiet_option()
def bench_cmd(models, device, threads, warmup, runs, min_time, checkpoint, serials, benchmark_binary, adb_client,
              device_python, repeats, cooldown, delegate, cpus, as_json, csv_path, plot_path, out_dir, no_rss,
              overwrite, quiet):
    """Latency of MODELS (.tflite) on the host or on adb-connected Android devices."""
    from toolkit.bench import format_table, run_bench

    result = run_bench(models, device=device, threads=threads, warmup=warmup, runs=runs, min_time_s=min_time,
                       checkpoint=checkpoint, serials=serials, benchmark_binary=benchmark_binary,
                       adb_client=adb_client, device_python=device_python, repeats=repeats, cooldown_s=cooldown,
                       delegate=delegate, cpus=cpus, out_dir=out_dir, csv_path=csv_path, plot_path=plot_path,
                       overwrite=overwrite, measure_rss=not no_rss, progress=not (quiet or as_json))
    if as_json:
        echo_json(result.to_dict(with_samples=False))
        return
    click.echo(format_table(result))
    for kind, path in result.outputs.items():
        click.echo(f"wrote {path}")
