"""The trained model (backbone + linear classifier head) and the head-less embedding wrapper that is exported."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.errors import InputError
from toolkit.models.registry import create_backbone
from toolkit.spec import ModelSpec


class FaceModel(nn.Module):
    """Backbone producing raw features plus an optional linear head with one logit per identity."""

    def __init__(self, spec: ModelSpec, num_classes: int = 0):
        super().__init__()
        self.spec = spec
        self.backbone = create_backbone(spec)
        self.head = nn.Linear(spec.embedding_dim, num_classes) if num_classes > 0 else None

    @property
    def num_classes(self) -> int:
        return 0 if self.head is None else self.head.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW -> logits (the training forward)."""
        if self.head is None:
            raise InputError("this model has no classifier head (num_classes=0); use embed() or train with classes")
        return self.head(self.backbone(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW -> L2-normalised embeddings."""
        return F.normalize(self.backbone(x), p=2, dim=1)


class PixelNormalizer(nn.Module):
    """The spec's input transform, raw 0..255 RGB NCHW -> what the backbone takes: the channel flip for a BGR
    backbone, then ``(x - mean) / std``. The one place it is written: training and the exported graph both use it."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec.require_raw_pixels("the embedding model")
        self.flip = spec.channel_order == "BGR"  # the app feeds RGB; a BGR backbone gets its order in the graph
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            x = x.flip(1)
        return (x - self.mean) * self.inv_std


class EmbeddingModel(nn.Module):
    """What ships: NHWC float32 raw RGB pixels 0..255 in, [N, D] out (L2-normalised when the spec says so). The head
    is gone by construction.

    The spec's channel order (a flip for BGR) and normalisation ``(x - mean) / std`` run inside the graph, so the
    app feeds raw RGB pixels.
    The PyTorch embedder runs this same module, so parity compares exactly what is exported.
    """

    def __init__(self, backbone: nn.Module, spec: ModelSpec):
        super().__init__()
        self.normalize = PixelNormalizer(spec)
        self.backbone = backbone
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.normalize(x.permute(0, 3, 1, 2)))
        return F.normalize(features, p=2, dim=1) if self.spec.l2_normalized else features


def embedding_model_from(model: FaceModel) -> EmbeddingModel:
    """Strip the head: wrap the backbone of a trained FaceModel for export, in eval mode."""
    wrapper = EmbeddingModel(model.backbone, model.spec)
    return wrapper.eval()
