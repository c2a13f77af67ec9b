"""ResNet backbones with torchvision's parameter names, a CIFAR-stem option, any base width, and
RF-ResNets whose final map has a chosen, bounded receptive field.

Parameter names equal torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, ..., `downsample.0`), so a
torchvision ResNet state dict (without `fc.`) loads as it is, and our encoder weights load into
torchvision. There is no classifier: the backbone ends at its last feature map.

Options beyond torchvision:
- `stem="cifar"`: 3x3 convolution with stride 1 and no max-pool, for 32-96 px images;
- `width`: channels of the first stage (64 in torchvision); 16 makes a CPU-sized net;
- `receptive_field(layer)`: the analytic receptive field of one unit of a stage's map;
- `forward_stages(x, layers)`: several stage maps from one pass.

RF-ResNet (ours; the CO-SSL paper names the family but we build it our own way): the ResNet-18
layout (4 stages of 2 basic blocks, strides 1, 2, 2, 2, the chosen stem) in which each of the 16
block convolutions is either 3x3 or 1x1. A 1x1 convolution does not grow the receptive field, so
the final map's receptive field is `1 + sum over 3x3 convs of 2 * jump` (jump = product of the
strides before the conv), and `kernel_plan_for_rf` picks the kernels that hit a target exactly:
it keeps convolutions 3x3 in network order as long as the target can still be reached, so the
early layers stay spatial and the late ones become 1x1, as in BagNet. With the CIFAR stem every
odd value from 3 to 109 is reachable (29, 43, 59, 99 among them); `rf=0` keeps all 3x3 (unbounded
relative to a 32 px image: 109 px). `co-ssl-train archs` prints the plans.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

STAGES = ("layer1", "layer2", "layer3", "layer4")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, base_width: int = 64,
                 kernels: Sequence[int] = (3, 3)):
        super().__init__()
        k1, k2 = kernels
        self.conv1 = nn.Conv2d(inplanes, planes, k1, stride, k1 // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, k2, 1, k2 // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(inplanes, planes, stride)
        self.kernels = ((k1, stride), (k2, 1))  # (kernel, stride) along the longest path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the middle convolution (3x3, or
    1x1 in BagNet's blocks)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, base_width: int = 64,
                 kernels: Sequence[int] = (3,)):
        super().__init__()
        (k,) = kernels
        inner = int(planes * base_width / 64)
        self.conv1 = nn.Conv2d(inplanes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, k, stride, k // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * 4, stride)
        self.kernels = ((1, 1), (k, stride), (1, 1))

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
CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 1}  # convolutions whose kernel a plan chooses


def receptive_field_of(kernels: Iterable[tuple[int, int]]) -> int:
    """Receptive field (px) after a chain of `(kernel, stride)` layers: rf += (k - 1) * jump; jump *= s."""
    rf, jump = 1, 1
    for k, s in kernels:
        rf += (k - 1) * jump
        jump *= s
    return rf


class StagedBackbone(nn.Module):
    """What every co-ssl backbone shares: a stem, then `layer1..layer4`, and the protocol the
    `Encoder` relies on (`channels`, `forward_features`, `forward_stages`, `receptive_field`).

    Subclasses set `stem_kernels` ((kernel, stride) of the stem's longest path), `channels` and the
    stage modules, and implement `forward_stem`.
    """

    stem_kernels: tuple[tuple[int, int], ...]
    channels: dict[str, int]
    # `pooled_head` (an nn.Module, only where one exists: RF-ResNet with head="mlp"): applied to the pooled
    # final map by `Encoder.pool`

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_stages(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Normalized images `(B, 3, H, W)` -> the maps `(B, C_l, h_l, w_l)` of `layers`, in one pass."""
        unknown = [name for name in layers if name not in self.channels]
        if unknown:
            raise ValueError(f"unknown layer {unknown[0]!r}; choose one of {tuple(self.channels)}")
        wanted, last = set(layers), max(STAGES.index(name) for name in layers)
        maps: dict[str, torch.Tensor] = {}
        x = self.forward_stem(x)
        for name in STAGES[: last + 1]:
            x = getattr(self, name)(x)
            if name in wanted:
                maps[name] = x
        return [maps[name] for name in layers]

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        """Normalized images `(B, 3, H, W)` -> the map after stage `layer`, `(B, C, h, w)`."""
        return self.forward_stages(x, (layer,))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)

    def layer_kernels(self, layer: str = "layer4") -> list[tuple[int, int]]:
        """`(kernel, stride)` of every layer on the longest path up to the end of stage `layer`."""
        kernels = list(self.stem_kernels)
        for name in STAGES:
            for blk in getattr(self, name):
                kernels += blk.kernels
            if name == layer:
                return kernels
        raise ValueError(f"unknown layer {layer!r}; choose one of {STAGES}")

    def receptive_field(self, layer: str = "layer4") -> int:
        """Side in pixels of the input region one unit of `layer`'s map depends on (analytic).

        Follows the longest path (the convolutions, not the shortcut).
        """
        return receptive_field_of(self.layer_kernels(layer))


class ResNet(StagedBackbone):
    """A ResNet trunk. `forward_features(x, layer)` returns the map after stage `layer`.

    Input is an already-normalized float tensor `(B, 3, H, W)`; the `Encoder` wrapper normalizes.
    `kernel_plan` (optional) gives, per block in network order, the kernels of the convolutions a
    plan may change (2 per basic block, the middle one per bottleneck); None keeps them all 3x3.
    """

    def __init__(self, block: str, layers: Sequence[int], *, width: int = 64, stem: str = "imagenet",
                 width_per_group: int = 64, strides: Sequence[int] = (1, 2, 2, 2),
                 kernel_plan: Sequence[Sequence[int]] | None = None):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        block_cls = BLOCKS[block]
        plan = list(kernel_plan) if kernel_plan is not None else [(3,) * CONVS_PER_BLOCK[block]] * sum(layers)
        if len(plan) != sum(layers):
            raise ValueError(f"kernel plan has {len(plan)} entries for {sum(layers)} blocks")
        self.stem = stem
        self.stem_kernels = stem_kernels(stem)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        self.channels = {}
        kernels = iter(plan)
        for i, (n_blocks, stride) in enumerate(zip(layers, strides)):
            planes = width * 2 ** i
            blocks = []
            for b in range(n_blocks):
                blocks.append(block_cls(inplanes, planes, stride if b == 0 else 1, width_per_group, next(kernels)))
                inplanes = planes * block_cls.expansion
            setattr(self, STAGES[i], nn.Sequential(*blocks))
            self.channels[STAGES[i]] = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def stem_kernels(stem: str) -> tuple[tuple[int, int], ...]:
    """(kernel, stride) of a ResNet stem: 7x7/2 conv + 3x3/2 max-pool, or the CIFAR 3x3/1 conv."""
    return ((7, 2), (3, 2)) if stem == "imagenet" else ((3, 1),)


# ---- RF-ResNet ----------------------------------------------------------------------------------

RF_LAYERS = (2, 2, 2, 2)  # the ResNet-18 layout
RF_STRIDES = (1, 2, 2, 2)
RF_OFFERED = (29, 43, 59, 99)  # the values the CO-SSL paper studies; any reachable value works


def _conv_jumps(stem: str, layers: Sequence[int] = RF_LAYERS, strides: Sequence[int] = RF_STRIDES) -> list[int]:
    """The jump (input px per map step) before each block convolution of a basic-block ResNet."""
    jump = 1
    for _, s in stem_kernels(stem):
        jump *= s
    jumps = []
    for n_blocks, stride in zip(layers, strides):
        for b in range(n_blocks):
            jumps.append(jump)  # conv1 of the block (carries the stride)
            jump *= stride if b == 0 else 1
            jumps.append(jump)  # conv2
    return jumps


def reachable_rfs(stem: str) -> list[int]:
    """Every receptive field an RF-ResNet with this stem can have, ascending."""
    base = receptive_field_of(stem_kernels(stem))
    sums = {0}
    for jump in _conv_jumps(stem):
        sums |= {s + 2 * jump for s in sums}
    return sorted(base + s for s in sums)


def kernel_plan_for_rf(rf: int, stem: str) -> list[tuple[int, int]]:
    """Per basic block `(k1, k2)` in {1, 3} so that the final map's receptive field is exactly `rf`.

    `rf=0` means unbounded: all 3x3 (plain ResNet-18). Convolutions stay 3x3 in network order as
    long as the rest can still reach the target (depth-first, 3x3 tried first), so the first
    solution found keeps the early layers spatial. Unreachable values raise ValueError naming the
    reachable ones.
    """
    jumps = _conv_jumps(stem)
    if rf == 0:
        choice = [3] * len(jumps)
    else:
        need = rf - receptive_field_of(stem_kernels(stem))
        gains = [2 * j for j in jumps]
        tail = [sum(gains[i:]) for i in range(len(gains) + 1)]  # most that convs i.. can still add
        choice = []

        def search(i: int, left: int) -> bool:
            if left == 0:
                choice.extend([1] * (len(gains) - i))
                return True
            if i == len(gains) or left < 0 or left > tail[i]:
                return False
            for k in (3, 1):
                choice.append(k)
                if search(i + 1, left - (gains[i] if k == 3 else 0)):
                    return True
                choice.pop()
            return False

        if not search(0, need):
            ok = reachable_rfs(stem)
            near = sorted(ok, key=lambda v: abs(v - rf))[:4]
            raise ValueError(f"receptive field {rf} px cannot be reached with the {stem} stem; nearest reachable: "
                             f"{', '.join(map(str, sorted(near)))} (any of {ok[0]}..{ok[-1]} in steps the strides "
                             "allow), or 0 for unbounded")
    return [(choice[2 * b], choice[2 * b + 1]) for b in range(len(choice) // 2)]


def rf_resnet(rf: int = 0, stem: str = "cifar", width: int = 64, head: str = "none") -> ResNet:
    """An RF-ResNet-18 whose final map has receptive field `rf` px (0: unbounded).

    `head="mlp"`: a 2-layer MLP (Linear, BatchNorm, ReLU, Linear; the final map's width throughout)
    after the global pooling, as the CO-SSL paper's RF-ResNets have, so the global representation
    can combine the bounded-RF local features non-linearly; the local map is unchanged.
    """
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
    if head not in ("none", "mlp"):
        raise ValueError(f"head must be 'none' or 'mlp', got {head!r}")
    plan = kernel_plan_for_rf(int(rf), stem)
    net = ResNet("basic", RF_LAYERS, width=width, stem=stem, strides=RF_STRIDES, kernel_plan=plan)
    if head == "mlp":
        c = net.channels[STAGES[-1]]
        net.pooled_head = nn.Sequential(nn.Linear(c, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True), nn.Linear(c, c))
    return net


def describe_plan(plan: Sequence[Sequence[int]], layers: Sequence[int] = RF_LAYERS) -> str:
    """`layer1 33 33 | layer2 13 33 | ...`: the kernels of each block's convolutions, by stage."""
    parts, it = [], iter(plan)
    for name, n in zip(STAGES, layers):
        parts.append(name + " " + " ".join("".join(str(k) for k in next(it)) for _ in range(n)))
    return " | ".join(parts)
