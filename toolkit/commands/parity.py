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
@click.option("--precision", type=click.Choice(["float32", "float16", "int8"]), default=None,
              help="Which default tolerances apply (default: from the export manifest).")
@click.option("--threshold", type=float, default=None,
              help="Cosine threshold for same/different agreement (default: the checkpoint's evaluation "
                   "report, else the median pair similarity).")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="LiteRT interpreter threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="Also write the report "
              "as JSON here.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--layers", "layers", is_flag=True,
              help="int8: also print each quantised layer's error (SQNR vs the float graph, lowest first), to "
                   "pick layers for `ftk export --keep-float`. Needs --images.")
@click.option("--layers-top", type=int, default=15, show_default=True, help="Rows of the --layers table.")
def parity_cmd(model, checkpoint, images, limit, tolerance, precision, threshold, threads, as_json, out_path,
               overwrite, layers, layers_top):
    """Prove MODEL.tflite computes the same embeddings as CHECKPOINT: exit 0 pass, 1 out of tolerance."""
    from pathlib import Path

    from toolkit.commands.common import echo_json
    from toolkit.errors import CheckFailed
    from toolkit.io import check_outputs_free, write_json_atomic
    from toolkit.parity import parse_tolerances, parity_check

    tolerances = parse_tolerances(tolerance)
    if layers and images is None:
        from toolkit.errors import InputError

        raise InputError("--layers needs --images (real faces: int8 was calibrated on faces)")
    if out_path:
        check_outputs_free([Path(out_path)], overwrite)
    report = parity_check(model, checkpoint, images=images, limit=limit, tolerances=tolerances,
                          precision=precision, threshold=threshold, num_threads=threads, progress=not as_json)
    data = report.to_dict()
    table = report.table()
    if layers:
        from dataclasses import asdict

        from toolkit.parity import layer_errors, layer_table

        errors = layer_errors(model, checkpoint, images, limit=min(limit, 32), progress=False)
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
