"""Plain torchvision ResNet state dicts, and files with the same names.

Also covers the DINO torch-hub ResNet-50 (`dino_resnet50_pretrain.pth`: torchvision names without
`fc`) and plain timm ResNet weights, whose parameter names equal torchvision's (timm's head is
`fc` too); a bare state dict cannot say which library wrote it. A state dict nested under
`state_dict` or `model` with the same names is accepted too. `fc.*` (the classifier) is dropped.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, has_trunk, state_dict_at, take_trunk

CONTAINERS = ("state_dict", "model")


def _locate(ckpt: Checkpoint) -> tuple[dict, str] | None:
    if has_trunk(ckpt.obj if isinstance(ckpt.obj, dict) else None):
        return ckpt.obj, "the top-level state dict"
    for key in CONTAINERS:
        sd = state_dict_at(ckpt.obj, key)
        if has_trunk(sd):
            return sd, f"{key}"
    return None


def match(ckpt: Checkpoint) -> int | None:
    found = _locate(ckpt)
    if found is None:
        return None
    return 50 if found[0] is ckpt.obj else 45


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    found = _locate(ckpt)
    sd, where = found if found is not None else (state_dict_at(ckpt.obj) or {}, "the top-level state dict")
    backbone = take_trunk(sd, "", f"{where} (torchvision names)")
    backbone.normalization = IMAGENET
    return backbone


ADAPTER = Adapter("torchvision", "torchvision ResNet state dict (also the DINO hub ResNet-50 and plain timm ResNet "
                  "weights, which use the same names)", "conv1.*, layer1-4.* (fc.* dropped)", match, extract)
