"""The learning-rate schedule: linear warmup, then SGDR cosine cycles."""

from __future__ import annotations

import math

from toolkit.train.config import TrainConfig


def lr_at(epoch: float, config: TrainConfig) -> float:
    """Learning rate at a fractional epoch: linear warmup, then SGDR cosine cycles of T_0 * T_mult**i epochs."""
    s = config.scheduler
    base = config.lr
    if s.name == "constant":
        return base if epoch >= s.warmup_epochs or s.warmup_epochs == 0 else base * max(epoch, 1e-3) / s.warmup_epochs
    if s.warmup_epochs > 0 and epoch < s.warmup_epochs:
        return base * max(epoch / s.warmup_epochs, 1e-3)
    t = epoch - s.warmup_epochs
    if s.T_mult == 1:
        t_cur, t_i = t % s.T_0, float(s.T_0)
    else:
        n = int(math.log(t / s.T_0 * (s.T_mult - 1) + 1, s.T_mult))
        t_cur = t - s.T_0 * (s.T_mult**n - 1) / (s.T_mult - 1)
        t_i = float(s.T_0 * s.T_mult**n)
    return s.eta_min + (base - s.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
