"""BatchNorm statistics re-estimated on real faces (a fresh or changed backbone's running mean/var), in place."""

from __future__ import annotations

import numpy as np


def recalibrate_batchnorm(model, faces_uint8: np.ndarray, batch_size: int = 32, passes: int = 1,
                          progress: bool = False) -> None:
    """Reset and re-estimate every BatchNorm's running mean/var on ``faces`` (cumulative average), in place."""
    import torch
    from torch import nn

    from toolkit.models.face_model import embedding_model_from  # imports torch

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
