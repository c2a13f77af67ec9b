"""SwAV, DeepCluster-v2 and SeLa-v2 checkpoints (facebookresearch/swav): the trunk under `module.`.

Both the released files (`swav_800ep_pretrain.pth.tar`, `deepclusterv2_800ep_pretrain.pth.tar`: a
state dict) and training checkpoints (`{"epoch", "state_dict", "optimizer", "amp"?}`) keep the
DistributedDataParallel prefix `module.` before torchvision names (SwAV's own ResNet-50 pads the
input by 1 before a padding-2 stem convolution, the same as torchvision's padding 3). The
projection head `module.projection_head.*` and the prototypes `module.prototypes.*` (one or several
`prototypesN` for DeepCluster-v2) are dropped. Any other DDP-saved torchvision ResNet reads the same.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at, take_trunk


def _state_dict(ckpt: Checkpoint) -> tuple[dict | None, str]:
    sd = state_dict_at(ckpt.obj, "state_dict")
    return (sd, "state_dict") if sd is not None else (state_dict_at(ckpt.obj), "the state dict")


def match(ckpt: Checkpoint) -> int | None:
    sd, _ = _state_dict(ckpt)
    if not has_trunk(sd, "module."):
        return None
    return 70 if any(k.startswith(("module.prototypes", "module.projection_head.")) for k in sd) else 60


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    sd, where = _state_dict(ckpt)
    backbone = take_trunk(sd or {}, "module.", f"{where}['module.*']")
    for key in list(backbone.tensors):
        if key.startswith(("prototypes", "projection_head.")):
            backbone.dropped.append(f"module.{key}")
            del backbone.tensors[key]
    backbone.normalization = IMAGENET
    multi = any(k.startswith("module.prototypes.prototypes") for k in (sd or {}))
    backbone.info = {"method": "deepcluster-v2 or sela-v2" if multi else None, "epoch": child(ckpt.obj, "epoch")}
    return backbone


ADAPTER = Adapter("swav", "SwAV / DeepCluster-v2 / SeLa-v2 checkpoint (facebookresearch/swav), or any DDP-saved "
                  "torchvision ResNet", "state_dict -> module.* (projection_head, prototypes dropped)", match, extract)
