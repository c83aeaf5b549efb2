"""``ftk parity-check``: the .tflite vs its PyTorch checkpoint on the same faces; exit 1 when out of tolerance."""

from __future__ import annotations

import click

from toolkit.commands.common import FACES_PICK_NOTE, echo_json, faces_option, pick_option, quiet_option, threads_option
from toolkit.constants import DEFAULT_PARITY_FACES
from toolkit.errors import CheckFailed
from toolkit.io import check_outputs_free, write_json_atomic


@click.command("parity-check")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="The checkpoint the .tflite was exported from.")
@faces_option("--images", "Default: the held-out faces the export recorded (manifest parity_sample), else the "
                           "stored reference inputs.")
@click.option("--limit", type=int, default=DEFAULT_PARITY_FACES, show_default=True,
              help="How many faces to compare.")
@click.option("--tolerance", "tolerance", multiple=True, metavar="NAME=VALUE",
              help="Override a tolerance, e.g. --tolerance min_cosine=0.999 (names: min_cosine, mean_cosine, "
                   "max_abs_diff, max_similarity_deviation, nn_agreement, decision_agreement). Repeatable.")
@click.option("--precision", type=click.Choice(["float32", "float16", "int8"]), default=None,
              help="Which default tolerances apply (default: from the export manifest).")
@click.option("--threshold", type=float, default=None,
              help="Cosine threshold for same/different agreement (default: the checkpoint's evaluation "
                   "report, else the median pair similarity).")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report to this JSON file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--layers", "layers", is_flag=True,
              help="int8: also print each quantised layer's error (SQNR vs the float graph, lowest first), to "
                   "pick layers for `ftk export --keep-float`. On --faces, else the faces the export held out.")
@click.option("--layers-top", type=click.IntRange(min=1), default=15, show_default=True, help="Rows of the --layers table.")
@quiet_option()
@pick_option(FACES_PICK_NOTE)
def parity_cmd(model, checkpoint, faces, limit, tolerance, precision, threshold, num_threads, as_json, out_path,
               overwrite, layers, layers_top, quiet, pick):
    """Prove MODEL.tflite computes the same embeddings as CHECKPOINT: exit 0 pass, 1 out of tolerance."""
    from pathlib import Path

    from toolkit.parity import parse_tolerances, parity_check

    tolerances = parse_tolerances(tolerance)
    if out_path:
        check_outputs_free([Path(out_path)], overwrite)
    report = parity_check(model, checkpoint, images=faces, limit=limit, tolerances=tolerances,
                          precision=precision, threshold=threshold, num_threads=num_threads,
                          progress=not (quiet or as_json), pick=pick)
    data = report.to_dict()
    table = report.table()
    if layers:
        from dataclasses import asdict

        from toolkit.parity import layer_errors, layer_table

        errors = layer_errors(model, checkpoint, faces, limit=min(limit, 32), progress=False, pick=pick)
        data["layers"] = [asdict(e) for e in errors]
        table += "\n" + layer_table(errors, layers_top)
    if out_path:
        write_json_atomic(out_path, data)
    if as_json:
        echo_json(data)
    else:
        click.echo(table)
    if not report.passed:
        raise CheckFailed(f"parity failed for {model}: " + "; ".join(report.failures))
