"""ViT checkpoint files in each published layout, built from a randomly initialized timm model.

Each builder returns `(object to torch.save, reference timm model, reference readout)`: the file
holds the reference model's trunk in the project's own key names and nesting (wrappers, heads,
decoders, predictors, momentum copies, MIM tokens; key names as in each project's model code,
/work/shared/VIT_LAYOUTS.md), and the loaded encoder must give the reference model's own
`forward_features` tokens. Copies that must be dropped hold other weights (the trunk + 1), so a
loader that took them would give other features.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch
from timm.layers import SwiGLUPacked
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

TINY = dict(img_size=32, patch_size=8, embed_dim=192, depth=2, num_heads=3)  # ViT-Ti width: 3 heads


def random_vit(seed: int = 0, cls=VisionTransformer, **kwargs) -> nn.Module:
    """A timm ViT (no head unless `num_classes`) with every parameter random, norms and layer scales
    near 1, in eval mode."""
    torch.manual_seed(seed)
    model = cls(**{"num_classes": 0, **TINY, **kwargs})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "gamma")):
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.05 if p.ndim > 1 else 0.1)
    return model.eval()


def tokens(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference's tokens after its final norm (prefix included) on ImageNet-normalized `x`."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.forward_features((x - mean) / std)


def check_features(encoder, model: nn.Module, readout: str, size: int = 32) -> None:
    """Patch map = the reference's tokens after norm without prefix; global = the family readout."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    ref = tokens(model, x)
    prefix = model.num_prefix_tokens
    with torch.no_grad():
        local, glob = encoder.forward_local(x), encoder.forward_global(x)
    side = size // model.patch_embed.patch_size[0]
    assert local.shape == (2, model.embed_dim, side, side)
    torch.testing.assert_close(local.flatten(2).transpose(1, 2), ref[:, prefix:], rtol=1e-5, atol=1e-5)
    expected = ref[:, 0] if readout == "cls" else model.forward_head(ref, pre_logits=True)
    torch.testing.assert_close(glob, expected, rtol=1e-5, atol=1e-5)


def _plus_one(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v + 1 for k, v in sd.items()}


def _pre(prefix: str, sd: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in sd.items()}


def _head(prefix: str, dims=(192, 64, 16)) -> dict[str, torch.Tensor]:
    return {f"{prefix}{i}.weight": torch.randn(b, a) for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))}


def dino_hub(**arch):
    m = random_vit(**arch)
    return m.state_dict(), m, "cls"


def dino_full():
    m = random_vit()
    teacher = {**_pre("backbone.", m.state_dict()), **_head("head.mlp."), "head.last_layer.weight_g": torch.ones(8, 1)}
    student = _pre("module.", _plus_one(teacher))
    args = argparse.Namespace(arch="vit_tiny", patch_size=8, out_dim=8)
    ckpt = {"teacher": teacher, "student": student, "epoch": 10, "args": args,
            "dino_loss": {"center": torch.zeros(1, 8)}}
    return ckpt, m, "cls"


def dinov2(registers: int = 0, swiglu: bool = False, **arch):
    kwargs: dict = {"init_values": 1e-5, **arch}
    if registers:
        kwargs.update(reg_tokens=registers, no_embed_class=True)
    if swiglu:
        kwargs.update(mlp_layer=SwiGLUPacked, act_layer=nn.SiLU, mlp_ratio=2.0)
    m = random_vit(**kwargs)
    sd = dict(m.state_dict())
    if registers:  # undo timm's _convert_dinov2: register_tokens, and a class slot in pos_embed
        cls_pos = torch.randn(1, 1, m.embed_dim) * 0.1
        sd["register_tokens"] = sd.pop("reg_token")
        sd["cls_token"] = sd["cls_token"] - cls_pos
        sd["pos_embed"] = torch.cat([cls_pos, sd["pos_embed"]], dim=1)
    if swiglu:
        sd = {k.replace("mlp.fc1.", "mlp.w12.").replace("mlp.fc2.", "mlp.w3."): v for k, v in sd.items()}
    sd["mask_token"] = torch.randn(1, m.embed_dim)
    return sd, m, "cls"


def mae_pretrain():
    m = random_vit()
    sd = {**m.state_dict(), "mask_token": torch.randn(1, 1, 128), "decoder_embed.weight": torch.randn(128, 192),
          "decoder_pos_embed": torch.randn(1, 17, 128), "decoder_blocks.0.norm1.weight": torch.ones(128),
          "decoder_norm.weight": torch.ones(128), "decoder_pred.weight": torch.randn(192, 128)}
    return {"model": sd, "epoch": 799, "args": argparse.Namespace(model="mae_vit_tiny_patch8")}, m, "cls"


def mae_encoder(**arch):
    """MAE's published `mae_pretrain_vit_*.pth`: `{"model": encoder}` with `norm`, no decoder (timm
    reads it as `vit_*_patch*_224.mae`)."""
    m = random_vit(**arch)
    return {"model": m.state_dict()}, m, "cls"


def mae_finetuned():
    m = random_vit(global_pool="avg", fc_norm=True, num_classes=10)
    return {"model": m.state_dict(), "epoch": 99}, m, "avg"


def ibot_full():
    m = random_vit(init_values=0.1)
    sd = {k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2"): v for k, v in m.state_dict().items()}
    teacher = {**_pre("backbone.", {**sd, "masked_embed": torch.randn(1, 192)}), **_head("head.mlp.")}
    return {"teacher": teacher, "student": _pre("module.", _plus_one(teacher)), "epoch": 5}, m, "cls"


def ibot_teacher(**arch):
    """iBOT's released `checkpoint_teacher.pth` (its `extract_backbone_weights.py --checkpoint_key
    teacher`): `{"state_dict": backbone}` with `backbone.` stripped, `head.*` when extracted with the
    head; the teacher is built without `masked_embed` (main_ibot.py)."""
    m = random_vit(**arch)
    return {"state_dict": {**m.state_dict(), **_head("head.mlp.", (m.embed_dim, 64, 16))}}, m, "cls"


def ibot_released_mean_pooling():
    m = random_vit(global_pool="avg", fc_norm=True)
    return {"state_dict": {**m.state_dict(), "masked_embed": torch.randn(1, 192)}}, m, "avg"


def mocov3(**arch):
    m = random_vit(**{"embed_dim": 384, "num_heads": 12, **arch})  # moco-v3 vits.py: ViT-S with 12 heads
    base = {**m.state_dict(), **_head("head.", (m.embed_dim, 64, 16))}
    sd = {**_pre("module.base_encoder.", base), **_pre("module.momentum_encoder.", _plus_one(base)),
          **_head("module.predictor.", (16, 64, 16))}
    return {"epoch": 300, "arch": "vit_small", "state_dict": sd, "optimizer": {"state": {}}}, m, "cls"


def ijepa(**arch):
    m = random_vit(class_token=False, global_pool="avg", fc_norm=False, **arch)
    target = _pre("module.", m.state_dict())
    return {"encoder": _plus_one(target), "target_encoder": target, "predictor": _head("module.predictor_embed."),
            "opt": {"state": {}}, "epoch": 300}, m, "avg"


def deit_distilled():
    m = random_vit(cls=VisionTransformerDistilled, num_classes=10)
    return {"model": m.state_dict(), "epoch": 299}, m, "cls"


def timm_training():
    m = random_vit(num_classes=10)
    ema = _plus_one(m.state_dict())
    return {"epoch": 3, "arch": "vit_tiny_patch8_32", "state_dict": m.state_dict(), "state_dict_ema": ema,
            "version": 2}, m, "cls"


LAYOUTS: dict[str, tuple[Callable, str]] = {  # name -> (builder, the format it must be detected as)
    "dino-hub": (dino_hub, "timm-vit"),
    "dino-full": (dino_full, "dino-vit"),
    "dinov2": (dinov2, "dinov2"),
    "dinov2-reg4": (lambda: dinov2(registers=4), "dinov2"),
    "dinov2-swiglu": (lambda: dinov2(swiglu=True), "dinov2"),
    "mae-pretrain": (mae_pretrain, "mae"),
    "mae-finetuned": (mae_finetuned, "mae"),
    "mae-encoder": (mae_encoder, "timm-vit"),
    "ibot-teacher": (ibot_teacher, "timm-vit"),
    "ibot-full": (ibot_full, "ibot"),
    "ibot-released": (ibot_released_mean_pooling, "ibot"),
    "mocov3": (mocov3, "mocov3-vit"),
    "ijepa": (ijepa, "ijepa"),
    "deit-distilled": (deit_distilled, "timm-vit"),
    "timm-training": (timm_training, "timm-vit"),
}
