"""facenet-pytorch's InceptionResnetV1 as a head-less backbone, and residual-scale folding for int8 export."""

from __future__ import annotations

import logging
import types

import torch
from torch import nn

from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)


class InceptionResnetV1Backbone(nn.Module):
    """InceptionResnetV1 up to ``last_bn``: the 512-d features before L2 normalisation.

    facenet-pytorch's own forward L2-normalises (or applies ``logits``); we keep the raw features so the classifier
    head trains on them and the embedding wrapper normalises once, in one place. State-dict keys are facenet-pytorch's
    own, so its published weights load unchanged (``logits.*`` is dropped by the loader).
    """

    def __init__(self, embedding_dim: int = 512):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        net = InceptionResnetV1(pretrained=None, classify=False)
        if embedding_dim != 512:
            net.last_linear = nn.Linear(1792, embedding_dim, bias=False)
            net.last_bn = nn.BatchNorm1d(embedding_dim, eps=0.001, momentum=0.1, affine=True)
        # Re-register facenet's layers on this module so state_dict keys match facenet-pytorch files exactly.
        for name, child in net.named_children():
            self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_1a(x)
        x = self.conv2d_2a(x)
        x = self.conv2d_2b(x)
        x = self.maxpool_3a(x)
        x = self.conv2d_3b(x)
        x = self.conv2d_4a(x)
        x = self.conv2d_4b(x)
        x = self.repeat_1(x)
        x = self.mixed_6a(x)
        x = self.repeat_2(x)
        x = self.mixed_7a(x)
        x = self.repeat_3(x)
        x = self.block8(x)
        x = self.avgpool_1a(x)
        x = self.dropout(x)
        x = self.last_linear(torch.flatten(x, 1))
        return self.last_bn(x)


def build_inception_resnet_v1(spec: ModelSpec) -> nn.Module:
    return InceptionResnetV1Backbone(spec.embedding_dim)


def _forward_folded(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    branches = [self.branch0(x), self.branch1(x)]
    if hasattr(self, "branch2"):
        branches.append(self.branch2(x))
    out = self.conv2d(torch.cat(branches, 1)) + x
    if getattr(self, "noReLU", False):
        return out
    return self.relu(out)


@torch.no_grad()
def fold_residual_scales(module: nn.Module) -> int:
    """Fold Block35/Block17/Block8 ``out * scale + x`` into the preceding 1x1 conv, in place. Returns blocks folded.

    ``conv(x) * s == conv_{W*s, b*s}(x)`` exactly in float, so embeddings do not change; the graph loses the MUL that
    otherwise survives int8 quantisation as ~23 int8 MULs plus ~43 TRANSPOSE ops around them.
    """
    from facenet_pytorch.models.inception_resnet_v1 import Block8, Block17, Block35

    folded = 0
    for block in module.modules():
        if isinstance(block, (Block35, Block17, Block8)) and not getattr(block, "_ftk_folded", False):
            scale = float(block.scale)
            block.conv2d.weight.mul_(scale)
            if block.conv2d.bias is not None:
                block.conv2d.bias.mul_(scale)
            block.scale = 1.0
            block.forward = types.MethodType(_forward_folded, block)
            block._ftk_folded = True
            folded += 1
    log.debug("folded %d residual scales", folded)
    return folded
