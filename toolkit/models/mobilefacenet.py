"""MobileFaceNet (Chen et al. 2018), laid out so its state_dict loads the published MS1M weights exactly.

The layout follows foamliu/MobileFaceNet (Apache-2.0), the source of ``../shared/models/mobilefacenet-ms1m``.
Read from the published ONNX graph (BatchNorms folded away there):

- activations are parameter-free: ReLU6 (ONNX ``Clip(0, 6)``) after the stem, every expand/depthwise conv of the
  bottlenecks and ``conv2``; plain ReLU inside ``dw_conv``; none after the bottleneck projection, ``gdconv``,
  ``conv3`` or the final BatchNorm;
- all 3x3 convs pad 1; the stem and the first block of each bottleneck group stride 2 (112 -> 56 -> 28 -> 14 -> 7),
  so the 7x7 global depthwise conv ``gdconv`` reduces the map to 1x1;
- residual connections where stride is 1 and channels are unchanged.

The backbone returns the raw output of the final BatchNorm1d ([N, embedding_dim], not L2-normalised).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.errors import InputError
from toolkit.spec import ModelSpec

# (expansion t, output channels c, repeats n, first stride s): the paper's bottleneck plan.
BOTTLENECK_PLAN = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
STEM_CHANNELS = 64
LAST_CHANNELS = 512
# Total downsampling of the network; the global depthwise conv covers the whole remaining map.
OUTPUT_STRIDE = 16


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6; keys ``.0`` conv, ``.1`` bn."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(),
        )


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise + BN + ReLU, then 1x1 pointwise + BN + ReLU (the stem's second layer)."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class InvertedResidual(nn.Module):
    """1x1 expand + 3x3 depthwise (both ReLU6) + linear 1x1 projection, with a skip when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            ConvBNReLU6(in_channels, hidden, kernel_size=1),
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class GlobalDepthwiseConv(nn.Module):
    """The 7x7 depthwise conv that replaces global average pooling (no padding), + BN, no activation."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.depthwise(x))


class MobileFaceNet(nn.Module):
    """Normalised NCHW [N, 3, S, S] (S = 112 for the published weights) -> raw features [N, embedding_dim]."""

    def __init__(self, input_size: int = 112, embedding_dim: int = 128):
        super().__init__()
        if input_size % OUTPUT_STRIDE or input_size < OUTPUT_STRIDE:
            raise InputError(f"MobileFaceNet needs an input size divisible by {OUTPUT_STRIDE}, got {input_size}",
                             hint="use 112, the size the published weights were trained at")
        self.conv1 = ConvBNReLU6(3, STEM_CHANNELS, stride=2)
        self.dw_conv = DepthwiseSeparable(STEM_CHANNELS, STEM_CHANNELS)
        blocks = []
        channels = STEM_CHANNELS
        for expansion, out_channels, repeats, first_stride in BOTTLENECK_PLAN:
            for i in range(repeats):
                blocks.append(InvertedResidual(channels, out_channels, first_stride if i == 0 else 1, expansion))
                channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.conv2 = ConvBNReLU6(channels, LAST_CHANNELS, kernel_size=1)
        self.gdconv = GlobalDepthwiseConv(LAST_CHANNELS, input_size // OUTPUT_STRIDE)
        self.conv3 = nn.Conv2d(LAST_CHANNELS, embedding_dim, 1, bias=True)
        self.bn = nn.BatchNorm1d(embedding_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # Used only when training from scratch; the pretrained file overwrites all of it.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.dw_conv(x)
        x = self.features(x)
        x = self.conv2(x)
        x = self.gdconv(x)
        x = self.conv3(x)
        return self.bn(x.flatten(1))


def fold_final_batchnorm(module: nn.Module) -> int:
    """Fold each MobileFaceNet's final BatchNorm1d into ``conv3``, in place; returns how many were folded.

    ``conv3`` is a 1x1 conv on the 1x1 map left by ``gdconv``, so the BatchNorm after ``flatten`` is a per-channel
    affine map of ``conv3``'s output channels: ``bn(conv3(x)) == conv3_{W*s, (b-mean)*s+beta}(x)`` with
    ``s = gamma / sqrt(var + eps)``, exact in real arithmetic (eval mode only). In an int8 graph the unfolded
    BatchNorm would survive as a float MUL + ADD after a DEQUANTIZE; folded, ``conv3`` is the last integer op.
    """
    folded = 0
    for net in module.modules():
        if not isinstance(net, MobileFaceNet) or not isinstance(net.bn, nn.BatchNorm1d):
            continue
        bn = net.bn
        if bn.training or bn.running_mean is None or bn.running_var is None:
            continue  # batch statistics: not a fixed affine map
        with torch.no_grad():
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0.0)
            bias = net.conv3.bias if net.conv3.bias is not None else torch.zeros_like(shift)
            net.conv3.weight.mul_(scale.view(-1, 1, 1, 1))
            new_bias = bias * scale + shift
            if net.conv3.bias is None:
                net.conv3.bias = nn.Parameter(new_bias)
            else:
                net.conv3.bias.copy_(new_bias)
        net.bn = nn.Identity().train(net.training)
        folded += 1
    return folded


def build_mobilefacenet(spec: ModelSpec) -> MobileFaceNet:
    """Registry builder: input size and embedding dim come from the spec (112 / 128 for the published weights)."""
    return MobileFaceNet(input_size=spec.input_size, embedding_dim=spec.embedding_dim)
