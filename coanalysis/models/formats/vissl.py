"""VISSL checkpoints: the ResNe(X)t trunk under `classy_state_dict -> base_model -> model -> trunk`.

VISSL's trunk wraps torchvision's ResNet modules in an `nn.ModuleDict` named `_feature_blocks`
(`conv1`, `bn1`, `conv1_relu`, `maxpool`, `layer1`-`layer4`, `avgpool`, `flatten`), so keys read
`_feature_blocks.conv1.weight`, `_feature_blocks.layer1.0.conv1.weight`; removing that prefix gives
torchvision names. Heads (`classy_state_dict -> ... -> heads`) are dropped. The flattened form
(`trunk._feature_blocks.*`, `heads.*`), e.g. a model's full state dict, is read too. VISSL's
`WIDTH_MULTIPLIER` (SwAV/SimCLR w2, w4) shows up as the stem width.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at, take_trunk

TRUNK = ("classy_state_dict", "base_model", "model", "trunk")
HEADS = ("classy_state_dict", "base_model", "model", "heads")
FLAT_CONTAINERS = ((), ("model_state_dict",), ("state_dict",), ("model",))


def _flat(ckpt: Checkpoint) -> tuple[dict, tuple[str, ...], str] | None:
    for path in FLAT_CONTAINERS:
        sd = state_dict_at(ckpt.obj, *path)
        for prefix in ("trunk._feature_blocks.", "_feature_blocks."):
            if has_trunk(sd, prefix):
                return sd, path, prefix
    return None


def match(ckpt: Checkpoint) -> int | None:
    if has_trunk(state_dict_at(ckpt.obj, *TRUNK), "_feature_blocks."):
        return 90
    return 80 if _flat(ckpt) is not None else None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    trunk = state_dict_at(ckpt.obj, *TRUNK)
    if trunk is not None:
        backbone = take_trunk(trunk, "_feature_blocks.",
                              "classy_state_dict.base_model.model.trunk['_feature_blocks.*']", outer="trunk.")
        heads = child(ckpt.obj, *HEADS)
        if isinstance(heads, dict):
            backbone.dropped += [f"heads.{k}" for k in heads]
    else:
        sd, path, prefix = _flat(ckpt) or ({}, (), "_feature_blocks.")
        backbone = take_trunk(sd, prefix, f"{'.'.join(path) or 'the state dict'}['{prefix}*']")
    backbone.normalization = IMAGENET
    return backbone


ADAPTER = Adapter("vissl", "VISSL checkpoint (classy_state_dict, ResNe(X)t trunk)",
                  "classy_state_dict.base_model.model.trunk -> _feature_blocks.* (or trunk._feature_blocks.*)",
                  match, extract)
