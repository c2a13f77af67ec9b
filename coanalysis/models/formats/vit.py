"""Vision Transformer checkpoints: one adapter per published layout (/work/shared/VIT_LAYOUTS.md).

Every trunk is handed back under timm's names (`vit_arch.to_timm` does the renames) with the
family's global readout (PROTOCOLS.md section 13); heads, decoders, predictors, momentum copies,
`mask_token` / `masked_embed` are dropped and listed. Layouts, checked against each project's
published model code (no real file was available here):
- `timm-vit`: a timm-named ViT state dict, bare or under `model` / `state_dict` (`state_dict_ema`:
  branch `ema`): DINO v1 hub files (`dino_vits16_pretrain.pth`, ...), DeiT (`{"model"}`, distilled
  with `dist_token`), timm, MAE encoder-only files (`mae_pretrain_vit_base.pth`) and iBOT's released
  teacher backbones (`checkpoint_teacher.pth`: the teacher has no `masked_embed`); CLS readout (mean
  through `fc_norm` when the model has one);
- `dino-vit`: DINO training checkpoints, `teacher` (`backbone.*`) / `student` (`module.backbone.*`);
- `dinov2`: DINOv2 hub files (`mask_token`, `ls1/ls2`, optional `register_tokens`, ViT-g SwiGLU);
- `mae`: MAE training checkpoints (`{"model"}` with the decoder: CLS readout, as MAE's linear
  probe) and fine-tuned ones (`fc_norm`, no `norm`: mean of patch tokens through `fc_norm`);
- `ibot`: iBOT full checkpoints (teacher / student) and released `{"state_dict"}` files
  (`masked_embed`, `gamma_1/2` layer scale; `use_mean_pooling` -> `fc_norm`);
- `mocov3-vit`: MoCo v3 `{"state_dict"}` with `module.base_encoder.*` (its `head.*` is the
  projector); ViT-S there has 12 heads (moco-v3 `vits.py`);
- `ijepa`: I-JEPA `{"encoder", "target_encoder", "predictor", ...}` with `module.*`; no class
  token, mean readout; branch `target_encoder` (default, what the paper evaluates) or `encoder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, is_tensor_dict, state_dict_at
from coanalysis.models.formats.networks import NETWORKS, networks, take_network
from coanalysis.models.formats.reading import plain
from coanalysis.models.formats.vit_arch import is_vit, to_timm
from coanalysis.models.trainer import UserError

# keys of a ViT model that are not its trunk (heads, MIM tokens, MAE decoder)
NOT_TRUNK = ("head.", "head_dist.", "mask_token", "masked_embed", "decoder_", "pre_logits.")
_SIZE_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 24}


def take_vit(sd: Mapping[str, Any], prefix: str, where: str, *, outer: str = "") -> Backbone:
    """The ViT trunk under `prefix` of `sd`, renamed to timm's names; every other key dropped."""
    tensors, dropped = {}, []
    for key, value in sd.items():
        inside = key[len(prefix):] if key.startswith(prefix) else None
        if inside is None or inside.startswith(NOT_TRUNK) or not hasattr(value, "shape"):
            dropped.append(outer + key)
        else:
            tensors[inside] = value
    tensors, notes = to_timm(tensors)
    return Backbone(tensors=tensors, where=where, dropped=dropped, normalization=IMAGENET, family="vit", notes=notes)


def _prefix(sd: Mapping[str, Any] | None, prefixes: tuple[str, ...]) -> str | None:
    return next((p for p in prefixes if is_vit(sd, p)), None)


def _heads_from_name(name: Any) -> int | None:
    """6 from 'vit_small', 'deit_small_patch16_224', 'mae_vit_small_patch16', ... (None if no size)."""
    if not isinstance(name, str):
        return None
    return next((h for size, h in _SIZE_HEADS.items() if size in name), None)


def _trained(sd: Mapping[str, Any] | None) -> dict | None:
    """`sd` when it is a state dict, else None."""
    return dict(sd) if is_tensor_dict(sd) else None


# ---- timm-named state dicts (DINO hub, DeiT, timm, MAE encoder-only)

TIMM_BRANCHES = {"model": ("model", "state_dict", ""), "ema": ("state_dict_ema", "model_ema")}


def _timm_locate(ckpt: Checkpoint, branch: str) -> tuple[dict, str, str] | None:
    for key in TIMM_BRANCHES[branch]:
        sd = _trained(ckpt.obj) if key == "" else state_dict_at(ckpt.obj, key)
        p = _prefix(sd, ("", "module."))
        if p is not None:
            return sd, p, key
    return None


def _timm_match(ckpt: Checkpoint) -> int | None:
    found = _timm_locate(ckpt, "model")
    return None if found is None else (50 if found[2] == "" else 45)


def _timm_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    branch = branch or "model"
    found = _timm_locate(ckpt, branch)
    if found is None:
        places = " or ".join(k or "top level" for k in TIMM_BRANCHES[branch])
        raise UserError(f"{ckpt.path} has no {branch} ViT weights ({places})")
    sd, prefix, key = found
    backbone = take_vit(sd, prefix, f"{key or 'the top-level state dict'}['{prefix}*'] (timm names)")
    for other in ("model", "state_dict", "state_dict_ema", "model_ema"):
        if other != key and state_dict_at(ckpt.obj, other) is not None:
            backbone.dropped += [f"{other}.{k}" for k in ckpt.obj[other]]
    backbone.branch = branch if key else None
    args = plain(child(ckpt.obj, "args")) or {}
    arch = child(ckpt.obj, "arch") or args.get("model") or args.get("arch")
    backbone.arch = arch if isinstance(arch, str) else None
    backbone.info = {"epoch": child(ckpt.obj, "epoch"), "num_heads": _heads_from_name(backbone.arch)}
    return backbone


TIMM_VIT = Adapter("timm-vit", "timm-named ViT state dict: DINO v1 hub files, DeiT (also distilled), timm, MAE "
                   "encoder-only", "(model|state_dict|top level) -> patch_embed.*, blocks.*, norm.*",
                   _timm_match, _timm_extract, branches=tuple(TIMM_BRANCHES))


# ---- DINO and iBOT training checkpoints: teacher / student

def _networks_match(masked: bool):
    def match(ckpt: Checkpoint) -> int | None:
        found = networks(ckpt, is_vit)
        if any(prefix is None for _, prefix in found):
            return None
        has_masked = any(f"{p}masked_embed" in sd for sd, p in found)
        return 92 if has_masked == masked else None
    return match


def _networks_extract(method: str):
    def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
        backbone = take_network(ckpt, branch, is_vit, take_vit, "ViT under (module.)backbone.*")
        backbone.info = {"method": method, "epoch": child(ckpt.obj, "epoch"),
                         "num_heads": _heads_from_name(backbone.arch)}
        return backbone
    return extract


DINO_VIT = Adapter("dino-vit", "DINO ViT training checkpoint (teacher and student)",
                   "teacher -> backbone.* | student -> module.backbone.*", _networks_match(False),
                   _networks_extract("dino"), branches=NETWORKS)


# ---- iBOT: full checkpoints (as DINO, with masked_embed) and released {"state_dict"} files

def _ibot_match(ckpt: Checkpoint) -> int | None:
    if _networks_match(True)(ckpt) is not None:
        return 92
    sd = state_dict_at(ckpt.obj, "state_dict")
    prefix = _prefix(sd, ("module.backbone.", "backbone.", "module.", ""))
    return 85 if prefix is not None and f"{prefix}masked_embed" in sd else None


def _ibot_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    if state_dict_at(ckpt.obj, "teacher") is not None:
        return _networks_extract("ibot")(ckpt, branch)
    if branch is not None:
        raise UserError(f"{ckpt.path} is a released iBOT file with a single network (state_dict); --branch applies "
                        "to full teacher/student checkpoints")
    sd = state_dict_at(ckpt.obj, "state_dict") or {}
    prefix = _prefix(sd, ("module.backbone.", "backbone.", "module.", "")) or ""
    backbone = take_vit(sd, prefix, f"state_dict['{prefix}*']")
    backbone.info = {"method": "ibot", "epoch": child(ckpt.obj, "epoch")}
    return backbone


IBOT = Adapter("ibot", "iBOT checkpoint (teacher/student, or a released state_dict file)",
               "teacher|student -> (module.)backbone.* | state_dict -> *", _ibot_match, _ibot_extract,
               branches=NETWORKS)


# ---- DINOv2 hub files

def _dinov2_match(ckpt: Checkpoint) -> int | None:
    sd = _trained(ckpt.obj)
    return 85 if is_vit(sd) and "mask_token" in sd and not any(k.startswith("decoder_") for k in sd) else None


def _dinov2_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    backbone = take_vit(_trained(ckpt.obj) or {}, "", "the top-level state dict (DINOv2 names)")
    # hub position embeddings are 518 px; DINOv2 evaluates (and is usually used) at 224 px
    backbone.info = {"method": "dinov2", "input_size": 224}
    backbone.notes.append("position embedding resampled by timm (bicubic, antialias) where DINOv2 itself uses "
                          "bicubic with interpolate_offset 0.1 and no antialias")
    return backbone


DINOV2 = Adapter("dinov2", "DINOv2 hub file (optionally with registers)",
                 "cls_token, register_tokens?, pos_embed, blocks.*.ls1/ls2, norm.* (mask_token dropped)",
                 _dinov2_match, _dinov2_extract)


# ---- MAE training (with decoder) and fine-tuned (fc_norm) checkpoints

def _mae_match(ckpt: Checkpoint) -> int | None:
    sd = state_dict_at(ckpt.obj, "model")
    if not is_vit(sd):
        return None
    if any(k.startswith("decoder_") for k in sd):
        return 85
    return 60 if "fc_norm.weight" in sd and "norm.weight" not in sd else None


def _mae_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    sd = state_dict_at(ckpt.obj, "model") or {}
    backbone = take_vit(sd, "", "model['*']")
    fine_tuned = "fc_norm.weight" in sd
    args = plain(child(ckpt.obj, "args")) or {}
    backbone.arch = args.get("model") if isinstance(args.get("model"), str) else None
    backbone.info = {"method": "mae" if not fine_tuned else "mae (fine-tuned)", "epoch": child(ckpt.obj, "epoch"),
                     "num_heads": _heads_from_name(backbone.arch)}
    return backbone


MAE = Adapter("mae", "MAE checkpoint: pretraining (decoder dropped, CLS readout) or fine-tuned (fc_norm mean)",
              "model -> patch_embed.*, blocks.*, norm.* | fc_norm.*", _mae_match, _mae_extract)


# ---- MoCo v3 ViT

_MOCO = ("module.base_encoder.", "base_encoder.")


def _mocov3_match(ckpt: Checkpoint) -> int | None:
    p = _prefix(state_dict_at(ckpt.obj, "state_dict"), _MOCO)
    return None if p is None else 80


def _mocov3_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    sd = state_dict_at(ckpt.obj, "state_dict") or {}
    prefix = _prefix(sd, _MOCO) or _MOCO[0]
    backbone = take_vit(sd, prefix, f"state_dict['{prefix}*']")
    arch = child(ckpt.obj, "arch")
    backbone.arch = arch if isinstance(arch, str) else None
    width = backbone.tensors.get("patch_embed.proj.weight")
    heads = 12 if width is not None and width.shape[0] == 384 else None  # moco-v3 vits.py: ViT-S, 12 heads
    backbone.info = {"method": "mocov3", "epoch": child(ckpt.obj, "epoch"), "num_heads": heads}
    return backbone


MOCOV3_VIT = Adapter("mocov3-vit", "MoCo v3 ViT checkpoint (base encoder; projector head dropped)",
                     "state_dict -> module.base_encoder.* (head.* dropped)", _mocov3_match, _mocov3_extract)


# ---- I-JEPA

IJEPA_BRANCHES = ("target_encoder", "encoder")


def _ijepa_match(ckpt: Checkpoint) -> int | None:
    found = [_prefix(state_dict_at(ckpt.obj, b), ("module.", "")) for b in IJEPA_BRANCHES]
    return 85 if any(p is not None for p in found) else None


def _ijepa_extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    branch = branch or next((b for b in IJEPA_BRANCHES if state_dict_at(ckpt.obj, b) is not None), "target_encoder")
    sd = state_dict_at(ckpt.obj, branch)
    prefix = _prefix(sd, ("module.", ""))
    if sd is None or prefix is None:
        raise UserError(f"{ckpt.path} has no {branch} ViT (I-JEPA keeps encoder and target_encoder)")
    backbone = take_vit(sd, prefix, f"{branch}['{prefix}*']", outer=f"{branch}.")
    for other in ("encoder", "target_encoder", "predictor"):
        if other != branch:
            backbone.dropped += [f"{other}.{k}" for k in (state_dict_at(ckpt.obj, other) or {})]
    backbone.branch = branch
    backbone.info = {"method": "ijepa", "epoch": child(ckpt.obj, "epoch")}
    return backbone


IJEPA = Adapter("ijepa", "I-JEPA checkpoint (target encoder by default; no class token, mean readout)",
                "target_encoder|encoder -> module.*", _ijepa_match, _ijepa_extract, branches=IJEPA_BRANCHES)

ADAPTERS = (TIMM_VIT, DINO_VIT, IBOT, DINOV2, MAE, MOCOV3_VIT, IJEPA)
