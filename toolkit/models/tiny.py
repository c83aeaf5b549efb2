"""A tiny CNN backbone so tests train, convert and run in seconds (never shipped)."""

from __future__ import annotations

import torch
from torch import nn

from toolkit.spec import ModelSpec


class TinyBackbone(nn.Module):
    def __init__(self, embedding_dim: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.last_linear = nn.Linear(32, embedding_dim, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_bn(self.last_linear(torch.flatten(self.features(x), 1)))


def build_tiny(spec: ModelSpec) -> nn.Module:
    return TinyBackbone(spec.embedding_dim)
