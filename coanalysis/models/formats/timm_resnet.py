"""timm ResNet training checkpoints (`train.py`'s CheckpointSaver) and timm-only ResNet variants.

A timm training checkpoint is `{"epoch", "arch", "state_dict", "optimizer", "args", "version": 2,
"state_dict_ema"?, "metric"?}`; the model's parameter names equal torchvision's, with the
classifier `fc`. Branch `model` (default) takes `state_dict`, `ema` takes `state_dict_ema`. A plain
timm ResNet state dict is indistinguishable from a torchvision one and is read as "torchvision";
timm-only variants (deep stems, SE blocks, average-pool shortcuts) are recognised here so that the
error names them.
"""

from __future__ import annotations

from coanalysis.models.formats.base import (IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk,
                                     state_dict_at, take_trunk)
from coanalysis.models.formats.reading import plain
from coanalysis.models.trainer import UserError

BRANCHES = {"model": "state_dict", "ema": "state_dict_ema"}


def _prefix(sd: dict | None) -> str | None:
    for prefix in ("", "module."):
        if sd is not None and (has_trunk(sd, prefix) or f"{prefix}conv1.0.weight" in sd):
            return prefix
    return None


def match(ckpt: Checkpoint) -> int | None:
    sd = state_dict_at(ckpt.obj, "state_dict")
    if sd is not None and _prefix(sd) is not None and ("version" in ckpt.obj or "state_dict_ema" in ckpt.obj):
        return 70
    if isinstance(ckpt.obj, dict) and "conv1.0.weight" in ckpt.obj and "layer1.0.conv1.weight" in ckpt.obj:
        return 40  # a timm deep-stem variant; extraction explains why it cannot be built
    return None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    branch = branch or "model"
    if state_dict_at(ckpt.obj, "state_dict") is None:
        return take_trunk(ckpt.obj, "", "the top-level state dict (timm names)")
    key = BRANCHES[branch]
    sd = state_dict_at(ckpt.obj, key)
    if sd is None:
        raise UserError(f"{ckpt.path} has no {key!r} (the {branch} weights); choose another --branch")
    prefix = _prefix(sd) or ""
    backbone = take_trunk(sd, prefix, f"{key}['{prefix}*']")
    other = "state_dict_ema" if key == "state_dict" else "state_dict"
    if state_dict_at(ckpt.obj, other) is not None:
        backbone.dropped += [f"{other}.{k}" for k in ckpt.obj[other]]
    backbone.branch = branch
    backbone.normalization = IMAGENET
    arch = child(ckpt.obj, "arch")
    backbone.arch = arch if isinstance(arch, str) else None
    args = plain(child(ckpt.obj, "args")) or {}
    size = args.get("img_size") or (args.get("input_size") or [None])[-1]
    backbone.info = {"epoch": child(ckpt.obj, "epoch"), "input_size": size if isinstance(size, int) else None}
    return backbone


ADAPTER = Adapter("timm", "timm ResNet training checkpoint (state_dict / state_dict_ema, torchvision names)",
                  "state_dict (or state_dict_ema) -> conv1.*, layer1-4.*", match, extract, branches=tuple(BRANCHES))
