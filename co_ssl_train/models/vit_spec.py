"""The ViT architectures' names and options, without importing timm (it takes seconds to import,
so `co_ssl_train.models.vit` is imported only when a ViT is built)."""

from __future__ import annotations

READOUTS = ("cls", "avg", "cls+avg")
MLPS = ("gelu", "swiglu")
# name -> (width, depth, heads): the standard sizes (DeiT / ViT / DINOv2 ViT-g)
SIZES: dict[str, tuple[int, int, int]] = {
    "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
    "vit_large": (1024, 24, 16), "vit_huge": (1280, 32, 16), "vit_giant": (1536, 40, 24),
}
OPTIONS = ("patch_size", "img_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "mlp", "class_token",
           "reg_tokens", "no_embed_class", "init_values", "fc_norm", "qkv_bias", "readout")
