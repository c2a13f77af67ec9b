"""DINO full training checkpoints: `{"student", "teacher", "optimizer", "epoch", "args", "dino_loss", ...}`.

Both networks are `MultiCropWrapper(backbone, head)` state dicts; for ResNets both are wrapped in
DistributedDataParallel, so the trunk is `module.backbone.*` (`backbone.*` when saved unwrapped).
The teacher (the momentum network DINO evaluates) is taken by default, `--branch student` takes the
student; the other network and both heads (`module.head.*`) are dropped. `args` (an
`argparse.Namespace`) is read as an inert record for the architecture name. The torch-hub file
`dino_resnet50_pretrain.pth` is a plain torchvision state dict and is read as "torchvision".
"""

from __future__ import annotations

from coanalysis.formats.base import (IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at,
                                     take_trunk)
from coanalysis.formats.reading import plain
from coanalysis.trainer import UserError

BRANCHES = ("teacher", "student")


def _prefix(sd: dict | None) -> str | None:
    for prefix in ("module.backbone.", "backbone."):
        if has_trunk(sd, prefix):
            return prefix
    return None


def match(ckpt: Checkpoint) -> int | None:
    sds = [state_dict_at(ckpt.obj, b) for b in BRANCHES]
    return 90 if all(_prefix(sd) is not None for sd in sds) else None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    branch = branch or "teacher"
    sd = state_dict_at(ckpt.obj, branch)
    prefix = _prefix(sd)
    if sd is None or prefix is None:
        raise UserError(f"{ckpt.path} has no {branch} ResNet under module.backbone.*")
    backbone = take_trunk(sd, prefix, f"{branch}['{prefix}*']", outer=f"{branch}.")
    other = BRANCHES[1 - BRANCHES.index(branch)]
    backbone.dropped += [f"{other}.{k}" for k in (state_dict_at(ckpt.obj, other) or {})]
    backbone.branch = branch
    backbone.normalization = IMAGENET
    args = plain(child(ckpt.obj, "args")) or {}
    arch = args.get("arch")
    backbone.arch = arch if isinstance(arch, str) else None
    backbone.info = {"method": "dino", "epoch": child(ckpt.obj, "epoch")}
    return backbone


ADAPTER = Adapter("dino", "DINO training checkpoint (teacher and student)", "teacher|student -> module.backbone.*",
                  match, extract, branches=BRANCHES)
