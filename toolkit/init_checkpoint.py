"""Create a checkpoint without training: random init (or local pretrained weights), optional BN re-estimation.

With plain random init every embedding points the same way (BatchNorm running stats are 0/1, activations blow up or
collapse), so parity numbers look perfect and prove nothing. Re-estimating BatchNorm statistics on real face crops
gives a random-weight network whose embeddings actually differ between faces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_PICK, MAX_NUM_CLASSES

from toolkit.errors import InputError
from toolkit.io import check_outputs_free

log = logging.getLogger(__name__)


@dataclass
class InitCheckpointResult:
    path: Path
    backbone: str
    num_classes: int
    weights_source: str
    calibration_faces: int


def recalibrate_batchnorm(model, faces_uint8: np.ndarray, batch_size: int = 32, passes: int = 1,
                          progress: bool = False) -> None:
    """Reset and re-estimate every BatchNorm's running mean/var on ``faces`` (cumulative average), in place."""
    import torch
    from torch import nn

    from toolkit.models.face_model import embedding_model_from

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over all calibration batches
    wrapper = embedding_model_from(model)
    model.train()
    # Dropout would perturb the statistics; only BN should be in training mode.
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    batches = [faces_uint8[i : i + batch_size] for i in range(0, len(faces_uint8), batch_size)]
    batches = [b for b in batches if len(b) > 1]  # BatchNorm1d cannot train on a batch of one
    iterator = [b for _ in range(passes) for b in batches]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="re-estimating BatchNorm", unit="batch")
    with torch.no_grad():
        for batch in iterator:
            wrapper(torch.from_numpy(batch.astype(np.float32)))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def init_checkpoint(out: str | Path, backbone: str = "inception_resnet_v1", num_classes: int = 0,
                    calibration: str | Path | None = None, weights: str | Path | None = None,
                    calibration_limit: int = DEFAULT_CALIBRATION_FACES, seed: int = 0, overwrite: bool = False,
                    input_size: int | None = None, crop: str | None = None,
                    progress: bool = True, pick: str = DEFAULT_PICK) -> InitCheckpointResult:
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.data.faces import load_face_crops
    from toolkit.io import sha256_file
    from toolkit.models.face_model import FaceModel
    from toolkit.models.registry import default_spec, load_backbone_weights, load_state_dict_file

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
