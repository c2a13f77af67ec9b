"""From training flags to a backbone: the architecture options a TrainConfig asks for, and the
Vision Transformer settings decided and checked before training starts.

ViTs (`vit_tiny`, `vit_small`, `vit_base`, ...) are timm's VisionTransformer (models/vit.py). The
training crop size is the ViT's `img_size` (position embedding of that grid; other view sizes, e.g.
multi-crop crops, resample it); `--vit-patch-size` is the patch side (auto: 4 at 64 px and less,
8 up to 128 px, else 16); `--global cls|avg` the readout that is the global representation. All
three land in the checkpoint's `arch.kwargs`, so `build_encoder(name, **kwargs)` rebuilds the run.
"""

from __future__ import annotations

from co_ssl_train.models import ARCHS, select_options
from co_ssl_train.models.vit_spec import SIZES as VIT_SIZES

VIT_FIELDS = ("vit_patch_size", "vit_dim", "vit_depth", "vit_heads", "drop_path")


def is_vit(arch: str) -> bool:
    return arch in ARCHS and ARCHS[arch].family == "vit"


def auto_patch_size(image_size: int) -> int:
    """The default ViT patch side: 4 px at 64 px and less (8x8 tokens at 32 px), 8 up to 128, else 16."""
    return 4 if image_size <= 64 else 8 if image_size <= 128 else 16


def resolved_patch_size(cfg, image_size: int) -> int:
    """`--vit-patch-size`, or its automatic value for a ViT (0 for other architectures)."""
    if not is_vit(cfg.arch):
        return cfg.vit_patch_size
    return cfg.vit_patch_size or auto_patch_size(image_size)


def _vit_shape(cfg) -> tuple[int, int, int]:
    width, depth, heads = VIT_SIZES.get(cfg.arch, (384, 12, 6))
    return cfg.vit_dim or width, cfg.vit_depth or depth, cfg.vit_heads or heads


def checks(cfg, image_size: int | None) -> list[tuple[bool, str]]:
    """The (ok, message) checks of the ViT flags, for `TrainConfig.validate` (their ranges are in
    config.RANGES); those that need the training image size only when it is given."""
    out = [(cfg.freeze_last_layer == 0 or cfg.method in ("dino", "co-dino"),
            "--freeze-last-layer applies to dino and co-dino (their prototype layer)"),
           (cfg.norm_last_layer or cfg.method in ("dino", "co-dino"),
            "--no-norm-last-layer applies to dino and co-dino (their prototype layer)")]
    if not is_vit(cfg.arch):
        given = [f for f in VIT_FIELDS if getattr(cfg, f)]
        out.append((not given, f"--{given[0].replace('_', '-')} applies to ViTs (vit_tiny, vit_small, vit_base); "
                               f"{cfg.arch} is a ConvNet" if given else ""))
        return out
    width, depth, heads = _vit_shape(cfg)
    out += [
        (depth >= 1 and heads >= 1 and width % heads == 0,
         f"--vit-dim {width} must be a multiple of --vit-heads {heads} (and --vit-depth at least 1)"),
        (cfg.local_layer == "layer4", f"--local-layer {cfg.local_layer} is a ResNet stage; a ViT's local map is its "
                                      "final patch tokens (--local-layer layer4)"),
        (cfg.mlp_after_pool, "--no-mlp-after-pool is a ResNet ablation; a ViT's global representation is its "
                             "readout token, not a pooled map"),
    ]
    if image_size is None:
        return out
    patch = resolved_patch_size(cfg, image_size)
    bag_patch = cfg.patch_size or max(4, image_size // 2)
    return out + [
        (1 <= patch <= image_size and image_size % patch == 0,
         f"--vit-patch-size {patch} must divide the {image_size} px training images (e.g. 4 at 32 px, 16 at 224)"),
        (cfg.local_crop_size % patch == 0, f"--local-crop-size {cfg.local_crop_size} must be a multiple of "
                                           f"--vit-patch-size {patch} on a ViT"),
        (cfg.method != "bagssl" or bag_patch % patch == 0,
         f"--patch-size {bag_patch} (BagSSL's patches) must be a multiple of --vit-patch-size {patch} on a ViT"),
    ]


def arch_options(cfg) -> dict:
    """The keyword options of `build_encoder(cfg.arch, ...)` (stored in meta.json's `arch.kwargs`)."""
    if not is_vit(cfg.arch):
        # the RF-ResNet head only when asked for, so the stored arch kwargs of other runs stay as they were
        head = {"head": cfg.rf_head} if cfg.rf_head != "none" else {}
        return select_options(cfg.arch, {"stem": cfg.stem, "width": cfg.width, "rf": cfg.rf, **head})
    opts = {"patch_size": cfg.vit_patch_size, "img_size": cfg.image_size, "readout": cfg.global_readout}
    for flag, name in (("vit_dim", "embed_dim"), ("vit_depth", "depth"), ("vit_heads", "num_heads")):
        if getattr(cfg, flag):
            opts[name] = getattr(cfg, flag)
    return opts
