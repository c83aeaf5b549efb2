from __future__ import annotations

import click

from toolkit.commands.common import (
    FACES_PICK_NOTE,
    check_input_size,
    echo_json,
    faces_option,
    pick_option,
    quiet_option,
)
from toolkit.constants import DEFAULT_CALIBRATION_FACES, MAX_NUM_CLASSES


@click.command("init-checkpoint")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint file to write (.pt).")
@click.option("--backbone", default="inception_resnet_v1", show_default=True, help="Backbone name from the registry.")
@click.option("--num-classes", type=click.IntRange(0, MAX_NUM_CLASSES), default=0, show_default=True,
              help=f"Classifier head size (0: no head; at most {MAX_NUM_CLASSES}).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local pretrained state_dict for the backbone (e.g. the MobileFaceNet .pt).")
@faces_option("--calibration", "Re-estimate BatchNorm statistics on them.", exists=True)
@click.option("--calibration-limit", type=int, default=DEFAULT_CALIBRATION_FACES, show_default=True,
              help="How many of --faces to re-estimate BatchNorm on.")
@click.option("--input-size", type=int, default=None, callback=check_input_size,
              help="Override the backbone's input size.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option()
@pick_option(FACES_PICK_NOTE)
def init_checkpoint_cmd(out, backbone, num_classes, weights, faces, calibration_limit, input_size, seed, overwrite,
                        as_json, quiet, pick):
    """Create a checkpoint without training, so export/parity/bench work before training exists."""
    from toolkit.init_checkpoint import init_checkpoint

    result = init_checkpoint(out, backbone=backbone, num_classes=num_classes, calibration=faces,
                             weights=weights, calibration_limit=calibration_limit, seed=seed,
                             overwrite=overwrite, input_size=input_size, progress=not (quiet or as_json), pick=pick)
    if as_json:
        echo_json(result)
        return
    click.echo(f"wrote {result.path} ({result.backbone}, {result.num_classes} classes, weights: "
               f"{result.weights_source}, {result.calibration_faces} calibration faces)")
