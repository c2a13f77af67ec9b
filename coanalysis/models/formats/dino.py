"""DINO full training checkpoints: `{"student", "teacher", "optimizer", "epoch", "args", "dino_loss", ...}`.

Both networks are `MultiCropWrapper(backbone, head)` state dicts; for ResNets both are wrapped in
DistributedDataParallel, so the trunk is `module.backbone.*` (`backbone.*` when saved unwrapped).
The teacher (the momentum network DINO evaluates) is taken by default, `--branch student` takes the
student; the other network and both heads (`module.head.*`) are dropped. `args` (an
`argparse.Namespace`) is read as an inert record for the architecture name. The torch-hub file
`dino_resnet50_pretrain.pth` is a plain torchvision state dict and is read as "torchvision".
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, take_trunk
from coanalysis.models.formats.networks import NETWORKS, networks, take_network


def match(ckpt: Checkpoint) -> int | None:
    return 90 if all(prefix is not None for _, prefix in networks(ckpt, has_trunk)) else None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    backbone = take_network(ckpt, branch, has_trunk, take_trunk, "ResNet under module.backbone.*")
    backbone.normalization = IMAGENET
    backbone.info = {"method": "dino", "epoch": child(ckpt.obj, "epoch")}
    return backbone


ADAPTER = Adapter("dino", "DINO training checkpoint (teacher and student)", "teacher|student -> module.backbone.*",
                  match, extract, branches=NETWORKS)
