"""Face-safe batched augmentation on the training device."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from toolkit.train.config import AugmentConfig

if TYPE_CHECKING:
    import torch


def augment_batch(x: "torch.Tensor", aug: AugmentConfig) -> "torch.Tensor":
    """Face-safe augmentation of float NCHW 0..255 on its device: flip, zoom/shift/rotate (one affine), colour."""
    import torch
    import torch.nn.functional as F

    n, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.empty(n, device=dev).uniform_(lo, hi)

    side = uniform(*aug.scale).sqrt()  # zoom: sample a square of this side fraction
    angle = uniform(-aug.rotate, aug.rotate) * (math.pi / 180)
    flip = torch.where(torch.rand(n, device=dev) < aug.hflip, -1.0, 1.0)
    cos, sin = angle.cos() * side, angle.sin() * side
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    # Shift within what the zoom leaves, plus the configured shift (normalised coords span 2).
    slack = (1 - side) + 2 * aug.shift
    theta[:, 0, 2] = (torch.rand(n, device=dev) * 2 - 1) * slack
    theta[:, 1, 2] = (torch.rand(n, device=dev) * 2 - 1) * slack
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    j = aug.color_jitter
    if j > 0:
        shape = (n, 1, 1, 1)
        x = x * uniform(1 - j, 1 + j).view(shape)  # brightness
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = gray + (x - gray) * uniform(1 - j, 1 + j).view(shape)  # saturation
        mean = gray.mean(dim=(2, 3), keepdim=True)
        x = mean + (x - mean) * uniform(1 - j, 1 + j).view(shape)  # contrast
    return x.clamp_(0, 255)
