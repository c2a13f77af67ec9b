"""ResNet backbones with torchvision's parameter names, a CIFAR-stem option and any base width.

Parameter names equal torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, ..., `downsample.0`), so a
torchvision ResNet state dict (without `fc.`) loads as it is, and our encoder weights load into
torchvision. There is no classifier: the backbone ends at its last feature map.

Options beyond torchvision:
- `stem="cifar"`: 3x3 convolution with stride 1 and no max-pool, for 32-96 px images;
- `width`: channels of the first stage (64 in torchvision); 16 makes a CPU-sized net;
- `receptive_field(layer)`: the analytic receptive field of one unit of a stage's map.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

STAGES = ("layer1", "layer2", "layer3", "layer4")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, base_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(inplanes, planes, stride)
        self.kernels = ((3, stride), (3, 1))  # (kernel, stride) along the longest path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, base_width: int = 64):
        super().__init__()
        inner = int(planes * base_width / 64)
        self.conv1 = nn.Conv2d(inplanes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * 4, stride)
        self.kernels = ((1, 1), (3, stride), (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A ResNet trunk. `forward_features(x, layer)` returns the map after stage `layer`.

    Input is an already-normalized float tensor `(B, 3, H, W)`; the `Encoder` wrapper normalizes.
    """

    def __init__(self, block: str, layers: Sequence[int], *, width: int = 64, stem: str = "imagenet",
                 width_per_group: int = 64, strides: Sequence[int] = (1, 2, 2, 2)):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        block_cls = BLOCKS[block]
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
            self.stem_kernels: tuple[tuple[int, int], ...] = ((7, 2), (3, 2))
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
            self.stem_kernels = ((3, 1),)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        self.channels: dict[str, int] = {}
        for i, (n_blocks, stride) in enumerate(zip(layers, strides)):
            planes = width * 2 ** i
            blocks = []
            for b in range(n_blocks):
                blocks.append(block_cls(inplanes, planes, stride if b == 0 else 1, width_per_group))
                inplanes = planes * block_cls.expansion
            setattr(self, STAGES[i], nn.Sequential(*blocks))
            self.channels[STAGES[i]] = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        """Normalized images `(B, 3, H, W)` -> the map after stage `layer`, `(B, C, h, w)`."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in STAGES:
            x = getattr(self, name)(x)
            if name == layer:
                return x
        raise ValueError(f"unknown layer {layer!r}; choose one of {STAGES}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def receptive_field(self, layer: str = "layer4") -> int:
        """Side in pixels of the input region one unit of `layer`'s map depends on (analytic).

        Follows the longest path (the convolutions, not the shortcut):
        rf += (k - 1) * jump; jump *= stride, layer after layer.
        """
        kernels = list(self.stem_kernels)
        for name in STAGES:
            for blk in getattr(self, name):
                kernels += blk.kernels
            if name == layer:
                break
        rf, jump = 1, 1
        for k, s in kernels:
            rf += (k - 1) * jump
            jump *= s
        return rf
