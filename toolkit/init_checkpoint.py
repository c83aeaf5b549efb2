"""Create a checkpoint without training: random init (or local pretrained weights), optional BN re-estimation.

With plain random init every embedding points the same way (BatchNorm running stats are 0/1, activations blow up or
collapse), so parity numbers look perfect and prove nothing. Re-estimating BatchNorm statistics on real face crops
gives a random-weight network whose embeddings actually differ between faces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from toolkit.checkpoint import CheckpointMeta, save_checkpoint
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_PICK, MAX_NUM_CLASSES
from toolkit.data.faces import load_face_crops
from toolkit.errors import InputError
from toolkit.io import check_outputs_free, sha256_file
from toolkit.models.batchnorm import recalibrate_batchnorm
from toolkit.models.registry import default_spec, load_backbone_weights, load_state_dict_file

log = logging.getLogger(__name__)


@dataclass
class InitCheckpointResult:
    path: Path
    backbone: str
    num_classes: int
    weights_source: str
    calibration_faces: int


def init_checkpoint(out: str | Path, backbone: str = "inception_resnet_v1", num_classes: int = 0,
                    calibration: str | Path | None = None, weights: str | Path | None = None,
                    calibration_limit: int = DEFAULT_CALIBRATION_FACES, seed: int = 0, overwrite: bool = False,
                    input_size: int | None = None, crop: str | None = None,
                    progress: bool = True, pick: str = DEFAULT_PICK) -> InitCheckpointResult:
    import torch

    from toolkit.models.face_model import FaceModel

    out = Path(out)
    if not 0 <= num_classes <= MAX_NUM_CLASSES:  # before the head is allocated (1e9 classes: 64 GB)
        raise InputError(f"--num-classes must be in 0..{MAX_NUM_CLASSES}, got {num_classes}")
    check_outputs_free([out], overwrite)
    spec = default_spec(backbone, input_size=input_size, crop=crop)
    torch.manual_seed(seed)
    model = FaceModel(spec, num_classes)
    source = "random"
    if weights is not None:
        load_backbone_weights(model.backbone, load_state_dict_file(weights), str(weights))
        source = f"pretrained:{Path(weights).name}:sha256={sha256_file(weights)[:16]}"
    n_faces = 0
    if calibration is not None:
        if weights is not None:
            log.warning("--faces re-estimates BatchNorm statistics and replaces the ones in %s; for "
                        "pretrained weights that usually costs accuracy: leave --faces out", Path(weights).name)
        faces = load_face_crops(calibration, spec, limit=calibration_limit, seed=seed, progress=progress, pick=pick,
                                min_faces=2)
        recalibrate_batchnorm(model, faces.images, progress=progress)
        n_faces = len(faces)
        source += "+bn-calibrated"
    model.eval()
    meta = CheckpointMeta(spec=spec, num_classes=num_classes,
                          class_names=[f"class_{i}" for i in range(num_classes)], weights_source=source)
    save_checkpoint(out, model, meta)
    log.info("initialised %s checkpoint at %s (%s)", backbone, out, source)
    return InitCheckpointResult(out, backbone, num_classes, source, n_faces)
