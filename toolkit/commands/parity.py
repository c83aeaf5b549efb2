"""``ftk parity-check``: the .tflite vs its PyTorch checkpoint on the same faces; exit 1 when out of tolerance."""

from __future__ import annotations

import click


@click.command("parity-check")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="The checkpoint the .tflite was exported from.")
@click.option("--images", type=click.Path(), default=None,
              help="Face photos (Person/*.jpg folder) or a faces CSV. Default: the stored reference inputs for "
                   "this model, if there are any.")
@click.option("--limit", type=int, default=64, show_default=True, help="Faces to compare.")
@click.option("--tolerance", "tolerance", multiple=True, metavar="NAME=VALUE",
              help="Override a tolerance, e.g. --tolerance min_cosine=0.999 (names: min_cosine, mean_cosine, "
                   "max_abs_diff, max_similarity_deviation, nn_agreement, decision_agreement). Repeatable.")
@click.option("--precision", type=click.Choice(["float32", "int8"]), default=None,
              help="Which default tolerances apply (default: from the export manifest).")
@click.option("--threshold", type=float, default=None,
              help="Cosine threshold for same/different agreement (default: the checkpoint's evaluation "
                   "report, else the median pair similarity).")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT interpreter threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="Also write the report "
              "as JSON here.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def parity_cmd(model, checkpoint, images, limit, tolerance, precision, threshold, threads, as_json, out_path,
               overwrite):
    """Prove MODEL.tflite computes the same embeddings as CHECKPOINT: exit 0 pass, 1 out of tolerance."""
    from pathlib import Path

    from toolkit.commands.common import echo_json
    from toolkit.errors import CheckFailed
    from toolkit.io import check_outputs_free, write_json_atomic
    from toolkit.parity import parse_tolerances, parity_check

    tolerances = parse_tolerances(tolerance)
    if out_path:
        check_outputs_free([Path(out_path)], overwrite)
    report = parity_check(model, checkpoint, images=images, limit=limit, tolerances=tolerances,
                          precision=precision, threshold=threshold, num_threads=threads, progress=not as_json)
    if out_path:
        write_json_atomic(out_path, report.to_dict())
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.table())
    if not report.passed:
        raise CheckFailed(f"parity failed for {model}: " + "; ".join(report.failures))
