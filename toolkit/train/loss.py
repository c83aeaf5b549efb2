"""The classification loss: focal, or (weighted, smoothed) cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.train.config import LossConfig

if TYPE_CHECKING:
    import torch


def classification_loss(logits: "torch.Tensor", target: "torch.Tensor", config: LossConfig,
                        weights: "torch.Tensor | None") -> "torch.Tensor":
    """Focal loss (Lin et al. 2017) with optional per-class weights, or (weighted, smoothed) cross-entropy."""
    import torch.nn.functional as F

    logits = logits.float()
    if config.name == "cross_entropy":
        return F.cross_entropy(logits, target, weight=weights, label_smoothing=config.label_smoothing)
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** config.gamma) * logp
    if weights is None:
        return loss.mean()
    w = weights[target]
    return (loss * w).sum() / w.sum()
