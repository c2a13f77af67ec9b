"""ViT trunks: renaming the published layouts to timm's names, and the architecture from the shapes.

`to_timm(tensors)` applies the renames every published layout needs (checked against timm's own
`checkpoint_filter_fn` / `_convert_dinov2` and the projects' model code):
- DINOv2 with registers: `register_tokens` -> `reg_token`; the class token's position embedding
  is folded into `cls_token` and dropped from `pos_embed` (timm's `no_embed_class` layout, as
  `_convert_dinov2` does; identical outputs);
- DINOv2 ViT-g SwiGLU: `mlp.w12` / `mlp.w3` -> `mlp.fc1` / `mlp.fc2` (timm's `SwiGLUPacked`);
- DINOv2 chunked blocks (`blocks.<chunk>.<i>.`, `block_chunks > 0`) -> `blocks.<i>.`;
- iBOT / BEiT-style layer scale `blocks.i.gamma_1` / `gamma_2` -> `blocks.i.ls1.gamma` / `ls2.gamma`;
- DeiT distilled `dist_token` -> `reg_token`: `[cls, dist, patches]` with a position embedding over
  all of them is timm's ViT with one register token and class-position embedding (exactly).

`infer_vit_arch(tensors, where, hints)` reads patch size, width, depth, class / register tokens,
which tokens the position embedding covers, the trained grid, layer scale, MLP kind and ratio,
qkv bias and the final norm (`norm` or `fc_norm`) from the shapes. The number of heads is not in
the weights: it comes from the file's own metadata (`hints`), else from the width of the standard
sizes (192 -> 3, 384 -> 6, 768 -> 12, 1024/1280 -> 16, 1536 -> 24), else width / 64, and is said
in a note. Variants co-ssl cannot build are refused with the variant named.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch

from coanalysis.models.trainer import VIT_SIZES, UserError

HEADS_BY_WIDTH = {w: h for w, _, h in VIT_SIZES.values()}  # 192 -> 3, 384 -> 6, ..., 1536 -> 24
SIZES = {name: (w, d) for name, (w, d, _) in VIT_SIZES.items()}
# key fragment -> the variant it marks (timm can build some of them, co-ssl's ViT does not)
UNSUPPORTED = {
    "relative_position_bias": "relative position biases (BEiT / data2vec)",
    "attn.q_bias": "separate q/v biases (BEiT / data2vec)",
    "attn.q_norm": "QK-norm attention",
    "norm_pre.": "a pre-norm after the embeddings (CLIP-style ViT)",
    "attn_pool.": "an attention-pooling head (MAP, SigLIP)",
    "rope": "rotary position embeddings (EVA / RoPE ViT)",
    "mlp.w1.": "an unpacked SwiGLU MLP (EVA)",
    "mlp.ffn_ln": "a norm inside the MLP (EVA-02)",
    "patch_embed.norm": "a norm in the patch embedding",
    "lamb": "differential attention",
}
_CHUNKED = re.compile(r"^blocks\.(\d+)\.(\d+)\.")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def is_vit(sd: Mapping[str, Any] | None, prefix: str = "") -> bool:
    """Whether `sd` holds a ViT trunk (a patch embedding and attention blocks) under `prefix`."""
    if sd is None or f"{prefix}patch_embed.proj.weight" not in sd:
        return False
    start = f"{prefix}blocks."
    return any(k.startswith(start) and ".attn." in k for k in sd)


def to_timm(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The published layout's trunk under timm's names, and notes on what was renamed."""
    out: dict[str, torch.Tensor] = {}
    notes = []
    chunked = any(_CHUNKED.match(k) for k in tensors)
    for key, value in tensors.items():
        if chunked:
            key = _CHUNKED.sub(r"blocks.\2.", key)
        key = re.sub(r"\.gamma_([12])$", r".ls\1.gamma", key)
        key = re.sub(r"\.mlp\.w12\.", ".mlp.fc1.", key)
        key = re.sub(r"\.mlp\.w3\.", ".mlp.fc2.", key)
        out[key] = value
    if chunked:
        notes.append("DINOv2 chunked blocks (blocks.<chunk>.<i>) renamed to blocks.<i>")
    if "register_tokens" in out:
        pos = out["pos_embed"]
        out["reg_token"] = out.pop("register_tokens")
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
        notes.append("DINOv2 registers: class-token position folded into cls_token (timm's no_embed_class layout)")
    if "dist_token" in out:
        if "reg_token" in out:
            raise UserError("a ViT with both a distillation token and register tokens is not among co-ssl's layouts")
        out["reg_token"] = out.pop("dist_token")
        notes.append("DeiT distillation token read as one extra prefix token (excluded from the patch map)")
    return out, notes


def check_vit(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse ViT variants co-ssl cannot build, naming the variant."""
    for fragment, variant in UNSUPPORTED.items():
        if any(fragment in k for k in tensors):
            raise UserError(f"{where}: a ViT with {variant} is not among co-ssl's architectures")
    proj = tensors["patch_embed.proj.weight"]
    if proj.ndim != 4:
        raise UserError(f"{where}: a linear patch embedding ({tuple(proj.shape)}) instead of timm's convolution is "
                        "not among co-ssl's layouts")
    if proj.shape[1] != 3 or proj.shape[2] != proj.shape[3]:
        raise UserError(f"{where}: the patch embedding {tuple(proj.shape)} is not square patches of RGB images")
    if "pos_embed" not in tensors:
        raise UserError(f"{where}: a ViT without an absolute position embedding (pos_embed) is not among co-ssl's "
                        "architectures")
    if "norm.weight" not in tensors and "fc_norm.weight" not in tensors:
        raise UserError(f"{where}: a ViT without a final norm (norm or fc_norm) is not among co-ssl's architectures")


def _square(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n and n > 0 else None


def infer_vit_arch(tensors: Mapping[str, torch.Tensor], where: str,
                   hints: Mapping[str, Any] | None = None) -> tuple[str, dict, list[str]]:
    """(ARCHS name, arch kwargs, notes) of a timm-named ViT trunk; a UserError names what does not fit."""
    hints = hints or {}
    check_vit(tensors, where)
    proj = tensors["patch_embed.proj.weight"]
    width, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = len({int(m.group(1)) for k in tensors if (m := _BLOCK.match(k))})
    class_token = "cls_token" in tensors
    reg_tokens = int(tensors["reg_token"].shape[1]) if "reg_token" in tensors else 0
    prefix = int(class_token) + reg_tokens
    length = int(tensors["pos_embed"].shape[1])
    if prefix and _square(length - prefix):
        side, no_embed_class = _square(length - prefix), False
    elif _square(length):
        side, no_embed_class = _square(length), True
    else:
        raise UserError(f"{where}: a position embedding of {length} tokens is not a square patch grid "
                        f"(with {prefix} prefix tokens or without)")
    fc1 = tensors.get("blocks.0.mlp.fc1.weight")
    fc2 = tensors.get("blocks.0.mlp.fc2.weight")
    if fc1 is None or fc2 is None:
        raise UserError(f"{where}: blocks.0 has no mlp.fc1/fc2 (or DINOv2 w12/w3): not a ViT MLP co-ssl can build")
    swiglu = int(fc2.shape[1]) * 2 == int(fc1.shape[0])
    heads, heads_from = hints.get("num_heads"), "the file's metadata"
    if not isinstance(heads, int):
        heads, heads_from = HEADS_BY_WIDTH.get(width), "the standard ViT of this width"
        if heads is None:
            heads, heads_from = max(1, width // 64), "head width 64"
    kwargs: dict[str, Any] = {"patch_size": patch, "img_size": side * patch}
    name = next((n for n, (w, d) in SIZES.items() if (w, d) == (width, depth) and HEADS_BY_WIDTH[w] == heads), "vit")
    if name == "vit":
        kwargs.update(embed_dim=width, depth=depth, num_heads=heads)
    ratio = int(fc1.shape[0]) / width
    if ratio != 4.0:
        kwargs["mlp_ratio"] = ratio
    if swiglu:
        kwargs["mlp"] = "swiglu"
    optional = {"class_token": (class_token, True), "reg_tokens": (reg_tokens, 0),
                "no_embed_class": (no_embed_class, False),
                "init_values": (1e-5 if "blocks.0.ls1.gamma" in tensors else None, None),
                "fc_norm": ("fc_norm.weight" in tensors, False),
                "qkv_bias": ("blocks.0.attn.qkv.bias" in tensors, True)}
    kwargs.update({k: v for k, (v, default) in optional.items() if v != default})
    notes = [f"{heads} attention heads (not stored in the weights; from {heads_from})"]
    return name, kwargs, notes
