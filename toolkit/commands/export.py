"""``ftk export``: a checkpoint -> model_float32.tflite (+ model_int8 / model_float16.tflite) + manifest.json."""

from __future__ import annotations

import click

from toolkit.commands.common import (
    FACES_PICK_NOTE, check_input_size, echo_json, faces_option, pick_option, quiet_option,
)
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_PARITY_FACES


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Export folder: model_float32.tflite, model_int8.tflite, model_float16.tflite, manifest.json.")
@click.option("--quantize", multiple=True, metavar="int8|float16|int8,float16",
              help="Also write full-integer int8 (PT2E static, per-channel weights, float32 I/O) and/or float16 "
                   "weights (float32 compute and I/O; for the GPU delegate); repeatable (--quantize int8 --quantize "
                   "float16 = --quantize int8,float16). Dynamic-range int8 is deliberately not offered.")
@faces_option("--calibration", "int8 calibrates on them.")
@click.option("--calibration-limit", type=int, default=DEFAULT_CALIBRATION_FACES, show_default=True,
              help="How many of --faces to calibrate on (at least 16; under 100 warns).")
@click.option("--parity-faces", type=click.IntRange(min=0), default=DEFAULT_PARITY_FACES, show_default=True,
              help="int8: read up to this many faces beyond --calibration-limit and hold them out of calibration (by "
                   "image content hash) for `ftk parity-check` (parity_faces.npz; none when fewer than 8 can be "
                   "spared; 0: none).")
@click.option("--calibration-batch", type=int, default=1, show_default=True,
              help="int8: faces per calibration step (> 1 observes on a batch-dimension graph, then converts the "
                   "batch-1 graph).")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER[,LAYER]",
              help="int8: keep these backbone layers in float (names as `ftk parity-check --layers` prints "
                   "them, e.g. conv3). Repeatable.")
@click.option("--input-size", type=int, default=None, callback=check_input_size,
              help="Export at another square input size (the manifest's spec records it).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option()
@pick_option(FACES_PICK_NOTE)
def export_cmd(checkpoint, out_dir, quantize, faces, calibration_limit, parity_faces, calibration_batch, keep_float,
               input_size, overwrite, as_json, quiet, pick):
    """Export CHECKPOINT's head-less embedding model to TFLite, with a manifest (spec, ops, runtime, hashes)."""
    from toolkit.export import export_model

    layers = tuple(n.strip() for item in keep_float for n in item.split(",") if n.strip())
    result = export_model(checkpoint, out_dir, quantize=",".join(quantize) or None, calibration=faces,
                          calibration_limit=calibration_limit, input_size=input_size, overwrite=overwrite,
                          progress=not quiet and not as_json, keep_float=layers,
                          calibration_batch=calibration_batch, pick=pick, parity_faces=parity_faces)
    if as_json:
        echo_json(result.summary())
        return
    for precision, art in result.artifacts.items():
        click.echo(f"wrote {art.path}  {precision:<7} {art.size_bytes / 2**20:7.2f} MiB  min runtime "
                   f"{art.info.get('min_runtime') or 'unknown'}  {art.seconds:6.1f} s  peak "
                   f"{art.peak_rss_bytes / 2**20:.0f} MiB")
    if result.folded_blocks:
        click.echo(f"folded {result.folded_blocks} residual scales before int8 quantisation")
    sample = result.manifest.get("parity_sample")
    if result.calibration_faces:
        held = f"; {sample['faces']} more held out for parity-check ({sample['file']})" if sample else ""
        click.echo(f"int8 calibrated on {result.calibration_faces} faces{held}")
    if result.stages:
        click.echo("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.stages.items())
                   + f"; total {result.total_seconds:.1f} s")
    click.echo(f"wrote {result.manifest_path}")
    first = "model_int8.tflite" if "int8" in result.artifacts else "model_float32.tflite"
    faces_hint = "" if sample else " --faces DIR_OR_CSV"
    click.echo(f"next: ftk parity-check {result.out_dir}/{first} --checkpoint {checkpoint}{faces_hint}")
