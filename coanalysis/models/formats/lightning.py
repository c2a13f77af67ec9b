"""PyTorch Lightning checkpoints of solo-learn and lightly: `state_dict` with the trunk under `backbone.`.

A Lightning checkpoint is `{"epoch", "global_step", "pytorch-lightning_version", "state_dict",
"loops", "callbacks", "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters"}`.
Its non-tensor parts load under `weights_only=True` except solo-learn's omegaconf configuration in
`hyper_parameters`, which is read as inert records (see `coanalysis.models.formats.reading`) and only
consulted for the dataset, method and backbone name.

- solo-learn: `backbone.` holds a torchvision ResNet (fc = Identity); heads are `projector.`,
  `predictor.`, `momentum_backbone.`, `momentum_projector.`, `classifier.` (the online linear
  probe), `queue`, `prototypes.`. For CIFAR, solo-learn replaces the stem with a 3x3 convolution of
  padding 2 and no max-pool, which is reproduced; its input statistics per dataset are solo-learn's.
- lightly: `backbone.` holds either a torchvision ResNet or lightly's usual
  `nn.Sequential(*list(resnet.children())[:-1])` (keys `backbone.0.weight`, `backbone.4.0.conv1.weight`,
  renamed to torchvision names); heads are `projection_head.`, `prediction_head.`,
  `backbone_momentum.`, `projection_head_momentum.`, `online_classifier.`.
"""

from __future__ import annotations

from coanalysis.models.formats.base import (IMAGENET, Adapter, Backbone, Checkpoint, Normalization, child,
                                     has_sequential_trunk, has_trunk, state_dict_at, take_trunk)
from coanalysis.models.formats.reading import plain

# solo-learn's evaluation statistics (solo/data/classification_dataloader.py)
SOLO_NORMALIZATION: dict[str, Normalization] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    "stl10": ((0.4914, 0.4823, 0.4466), (0.247, 0.243, 0.261)),
}
SOLO_HEADS = ("projector.", "predictor.", "momentum_backbone.", "momentum_projector.", "classifier.", "queue",
              "prototypes.")
LIGHTLY_HEADS = ("projection_head.", "prediction_head.", "backbone_momentum.", "projection_head_momentum.",
                 "online_classifier.")


def _lightning_state_dict(ckpt: Checkpoint) -> dict | None:
    if not isinstance(ckpt.obj, dict) or not ({"pytorch-lightning_version", "global_step"} & set(ckpt.obj)):
        return None
    return state_dict_at(ckpt.obj, "state_dict")


def _heads(sd: dict, heads: tuple[str, ...]) -> bool:
    return any(k.startswith(heads) for k in sd)


def match_solo(ckpt: Checkpoint) -> int | None:
    sd = _lightning_state_dict(ckpt)
    if sd is None or not has_trunk(sd, "backbone."):
        return None
    cfg = child(ckpt.obj, "hyper_parameters", "cfg")
    return 75 if cfg is not None or "classifier.weight" in sd else 60


def match_lightly(ckpt: Checkpoint) -> int | None:
    sd = _lightning_state_dict(ckpt)
    if sd is None:
        return None
    if has_sequential_trunk(sd, "backbone."):
        return 75
    if has_trunk(sd, "backbone."):
        return 70 if _heads(sd, LIGHTLY_HEADS) else 55
    return None


def extract_solo(ckpt: Checkpoint, branch: str | None) -> Backbone:
    backbone = take_trunk(_lightning_state_dict(ckpt) or {}, "backbone.", "state_dict['backbone.*']")
    cfg = plain(child(ckpt.obj, "hyper_parameters", "cfg")) or {}
    dataset = child(cfg, "data", "dataset")
    backbone.normalization = SOLO_NORMALIZATION.get(dataset, IMAGENET)
    conv1 = backbone.tensors.get("conv1.weight")
    if conv1 is not None and conv1.shape[-1] == 3:
        backbone.conv1_padding = 2
        backbone.notes.append("solo-learn CIFAR stem: 3x3 conv1 with padding 2, no max-pool")
    name = child(cfg, "backbone", "name")
    backbone.arch = name if isinstance(name, str) else None
    backbone.info = {"method": child(cfg, "method"), "dataset": dataset, "epoch": child(ckpt.obj, "epoch")}
    crop = child(cfg, "data", "crop_size") if isinstance(child(cfg, "data"), dict) else None
    if isinstance(crop, int):
        backbone.info["input_size"] = crop
    return backbone


def extract_lightly(ckpt: Checkpoint, branch: str | None) -> Backbone:
    sd = _lightning_state_dict(ckpt) or {}
    layout = "Sequential children" if has_sequential_trunk(sd, "backbone.") else "torchvision names"
    backbone = take_trunk(sd, "backbone.", f"state_dict['backbone.*'] ({layout})")
    backbone.normalization = IMAGENET
    backbone.info = {"epoch": child(ckpt.obj, "epoch")}
    return backbone


SOLO_LEARN = Adapter("solo-learn", "solo-learn Lightning checkpoint (.ckpt)", "state_dict -> backbone.*",
                     match_solo, extract_solo)
LIGHTLY = Adapter("lightly", "lightly Lightning checkpoint (.ckpt), torchvision or Sequential trunk",
                  "state_dict -> backbone.* (or backbone.0, backbone.4-7)", match_lightly, extract_lightly)
