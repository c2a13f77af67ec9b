"""PyContrast checkpoints (HobbitLong/PyContrast): `{"model", "contrast", "optimizer", "epoch", "model_ema"?, "amp"?}`.

`model` is the DistributedDataParallel state dict of `RGBSingleHead` / `RGBMultiHeads`: the
encoder (a torchvision-named ResNet without `fc`; `resnet50x2` / `x4` widen the stem) is
`module.encoder.*`, the heads `module.head.*` and `module.head_jig.*`. `model_ema` (MoCo-style
memory) is the momentum copy without the `module.` prefix. Branch `model` (default) or `ema`.
The memory bank (`contrast`) is not a model weight. CMC models (two encoders on L and ab
channels) take 1- and 2-channel inputs and cannot be read as RGB encoders.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at, take_trunk
from coanalysis.models.trainer import UserError

BRANCHES = {"model": ("model", "module.encoder."), "ema": ("model_ema", "encoder.")}


def match(ckpt: Checkpoint) -> int | None:
    return 80 if has_trunk(state_dict_at(ckpt.obj, "model"), "module.encoder.") else None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    branch = branch or "model"
    key, prefix = BRANCHES[branch]
    sd = state_dict_at(ckpt.obj, key)
    if not has_trunk(sd, prefix):
        raise UserError(f"{ckpt.path} has no {key!r} with an encoder under {prefix}*; choose another --branch")
    backbone = take_trunk(sd, prefix, f"{key}['{prefix}*']", outer=f"{key}.")
    other = "model_ema" if key == "model" else "model"
    backbone.dropped += [f"{other}.{k}" for k in (state_dict_at(ckpt.obj, other) or {})]
    backbone.branch = branch
    backbone.normalization = IMAGENET
    backbone.info = {"epoch": child(ckpt.obj, "epoch")}
    return backbone


ADAPTER = Adapter("pycontrast", "PyContrast checkpoint (model / model_ema)", "model -> module.encoder.*",
                  match, extract, branches=tuple(BRANCHES))
