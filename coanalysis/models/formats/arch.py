"""Which `ARCHS` entry a torchvision-named ResNet trunk is, read from its weight shapes.

- block type: a `conv3` in the first block means bottlenecks, else basic blocks;
- depth: the number of blocks in each of the four stages;
- width: the stem's output channels (64 in torchvision; 128 for SimCLR/SwAV "x2" ResNets, which
  is `width=128` here), and for bottlenecks the inner width of the first block relative to it
  (twice as wide for wide_resnet50_2 / wide_resnet101_2);
- stem: a 7x7 first convolution is the ImageNet stem, a 3x3 one the CIFAR stem (stride 1, no
  max-pool).
Grouped convolutions (ResNeXt), deep stems (ResNet-C/D), squeeze-excitation and average-pool
shortcuts are not among co-ssl's architectures and get a clear error.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from coanalysis.models.trainer import UserError

# (block, blocks per stage, inner width per 64 stem channels) -> ARCHS name
SIGNATURES: dict[tuple[str, tuple[int, int, int, int], int], str] = {
    ("basic", (1, 1, 1, 1), 64): "resnet10",
    ("basic", (2, 2, 2, 2), 64): "resnet18",
    ("basic", (3, 4, 6, 3), 64): "resnet34",
    ("bottleneck", (3, 4, 6, 3), 64): "resnet50",
    ("bottleneck", (3, 4, 23, 3), 64): "resnet101",
    ("bottleneck", (3, 8, 36, 3), 64): "resnet152",
    ("bottleneck", (3, 4, 6, 3), 128): "wide_resnet50_2",
    ("bottleneck", (3, 4, 23, 3), 128): "wide_resnet101_2",
}
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.")


def check_plain_resnet(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse ResNet variants co-ssl cannot build, naming the variant."""
    keys = list(tensors)
    if "conv1.0.weight" in tensors or any(k.startswith("stem.") for k in keys):
        raise UserError(f"{where}: a deep 3x3 stem (ResNet-C/D/S, e.g. timm resnet50d or mmpretrain ResNetV1d) "
                        "is not among co-ssl's architectures; only the torchvision-style 7x7 or CIFAR 3x3 stem is")
    if any(".se." in k or ".attn." in k for k in keys):
        raise UserError(f"{where}: squeeze-excitation / attention blocks (SE-ResNet) are not among co-ssl's "
                        "architectures")
    if any(k.endswith("downsample.2.weight") for k in keys):
        raise UserError(f"{where}: average-pool shortcuts (ResNet-D) are not among co-ssl's architectures")


def infer_arch(tensors: Mapping[str, torch.Tensor], where: str) -> tuple[str, dict]:
    """(ARCHS name, arch kwargs) of a torchvision-named trunk; a UserError names what does not fit."""
    check_plain_resnet(tensors, where)
    conv1 = tensors.get("conv1.weight")
    if conv1 is None or conv1.ndim != 4:
        raise UserError(f"{where} has no ResNet stem (conv1.weight); is it a ResNet checkpoint?")
    if conv1.shape[1] != 3:
        raise UserError(f"{where}: the first convolution takes {conv1.shape[1]} input channels; co-ssl encoders "
                        "take RGB images (3 channels)")
    stems = {7: "imagenet", 3: "cifar"}
    if conv1.shape[-1] not in stems:
        raise UserError(f"{where}: a {conv1.shape[-1]}x{conv1.shape[-1]} first convolution is neither the ImageNet "
                        "(7x7) nor the CIFAR (3x3) ResNet stem")
    width = int(conv1.shape[0])
    blocks: dict[int, set[int]] = {1: set(), 2: set(), 3: set(), 4: set()}
    for key in tensors:
        found = _BLOCK.match(key)
        if found:
            blocks[int(found.group(1))].add(int(found.group(2)))
    counts = tuple(len(blocks[i]) for i in (1, 2, 3, 4))
    if 0 in counts:
        raise UserError(f"{where}: stage layer{counts.index(0) + 1} is missing; not a four-stage ResNet trunk")
    bottleneck = "layer1.0.conv3.weight" in tensors
    conv2 = tensors.get("layer1.0.conv2.weight")
    if conv2 is not None and conv2.ndim == 4 and conv2.shape[1] != conv2.shape[0] and bottleneck:
        raise UserError(f"{where}: grouped 3x3 convolutions (ResNeXt) are not among co-ssl's architectures")
    inner = int(tensors["layer1.0.conv1.weight"].shape[0]) * 64 // width if bottleneck else 64
    signature = ("bottleneck" if bottleneck else "basic", counts, inner)
    if signature not in SIGNATURES:
        raise UserError(f"{where}: a ResNet with {signature[0]} blocks {list(counts)} and inner width {inner}/64 is "
                        f"not among co-ssl's architectures ({', '.join(SIGNATURES.values())})")
    kwargs: dict = {"stem": stems[conv1.shape[-1]]}
    if width != 64:
        kwargs["width"] = width
    return SIGNATURES[signature], kwargs
