"""BagNet-9/17/33 (Brendel & Bethge 2019): ResNet-50-like nets of mostly 1x1 convolutions whose
final map has a receptive field of 9, 17 or 33 px.

Layout as in the paper's code: a stem of a 1x1 then a 3x3 convolution (stride 1), then four stages
of bottleneck blocks (3, 4, 6, 3 blocks; strides 2, 2, 2, 1). In BagNet-q, the first block of the
first 2, 3 or 4 stages has a 3x3 middle convolution and every other convolution is 1x1, so the
receptive field is 3 (stem) + 2 (stage 1, jump 1) + 4 (stage 2, jump 2) [+ 8 (stage 3, jump 4)
[+ 16 (stage 4, jump 8)]] = 9, 17, 33.

Ours, where we differ: the 3x3 convolutions are zero-padded ("same" padding) instead of "valid",
so maps keep the ResNet sizes (32 px -> 4x4 at layer4) and every image size works; a unit near
the border then sees padding for part of its field. Stage names are `layer1..layer4`, as the
`Encoder` expects.
"""

from __future__ import annotations

import torch
from torch import nn

from co_ssl_train.models.resnet import STAGES, Bottleneck, StagedBackbone

BAGNET_LAYERS = (3, 4, 6, 3)
BAGNET_STRIDES = (2, 2, 2, 1)
BAGNET_KERNEL3 = {9: (1, 1, 0, 0), 17: (1, 1, 1, 0), 33: (1, 1, 1, 1)}  # 3x3 blocks at the start of each stage


class BagNet(StagedBackbone):
    """BagNet-`rf` with base width `width` (64 in the paper; channels 4x that per stage expansion)."""

    def __init__(self, rf: int, width: int = 64):
        super().__init__()
        if rf not in BAGNET_KERNEL3:
            raise ValueError(f"BagNet receptive field must be one of {tuple(BAGNET_KERNEL3)}, got {rf}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.conv1 = nn.Conv2d(3, width, 1, 1, 0, bias=False)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.stem_kernels = ((1, 1), (3, 1))
        self.channels = {}
        inplanes = width
        for i, (n_blocks, stride, n3) in enumerate(zip(BAGNET_LAYERS, BAGNET_STRIDES, BAGNET_KERNEL3[rf])):
            planes = width * 2 ** i
            blocks = []
            for b in range(n_blocks):
                blocks.append(Bottleneck(inplanes, planes, stride if b == 0 else 1, 64, (3 if b < n3 else 1,)))
                inplanes = planes * Bottleneck.expansion
            setattr(self, STAGES[i], nn.Sequential(*blocks))
            self.channels[STAGES[i]] = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv2(self.conv1(x))))
