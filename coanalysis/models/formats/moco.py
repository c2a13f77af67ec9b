"""MoCo checkpoints (facebookresearch/moco and moco-v3): `{"epoch", "arch", "state_dict", "optimizer", ...}`.

- MoCo v1/v2: the query encoder is `module.encoder_q.*` (a torchvision ResNet whose `fc` is the
  projection: dropped); the momentum key encoder `module.encoder_k.*` and the queue
  (`module.queue`, `module.queue_ptr`) are dropped.
- MoCo v3: the base encoder is `module.base_encoder.*` (its `fc` is the projector MLP: dropped);
  `module.momentum_encoder.*` and `module.predictor.*` are dropped.
Files without the DistributedDataParallel `module.` prefix are read too.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at, take_trunk


def _state_dict(ckpt: Checkpoint) -> dict | None:
    return state_dict_at(ckpt.obj, "state_dict") or state_dict_at(ckpt.obj)


def _prefix(sd: dict | None, encoder: str) -> str | None:
    for prefix in (f"module.{encoder}.", f"{encoder}."):
        if has_trunk(sd, prefix):
            return prefix
    return None


def _adapter(name: str, encoder: str, description: str) -> Adapter:
    def match(ckpt: Checkpoint) -> int | None:
        prefix = _prefix(_state_dict(ckpt), encoder)
        return None if prefix is None else (80 if prefix.startswith("module.") else 75)

    def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
        sd = _state_dict(ckpt) or {}
        prefix = _prefix(sd, encoder) or f"module.{encoder}."
        container = "state_dict" if state_dict_at(ckpt.obj, "state_dict") is not None else "the state dict"
        backbone = take_trunk(sd, prefix, f"{container}['{prefix}*']")
        backbone.normalization = IMAGENET
        arch = child(ckpt.obj, "arch")
        backbone.arch = arch if isinstance(arch, str) else None
        backbone.info = {"method": name, "epoch": child(ckpt.obj, "epoch")}
        return backbone

    return Adapter(name, description, f"state_dict -> module.{encoder}.*", match, extract)


MOCO = _adapter("moco", "encoder_q", "MoCo v1/v2 checkpoint (query encoder)")
MOCO_V3 = _adapter("mocov3", "base_encoder", "MoCo v3 checkpoint (base encoder)")
