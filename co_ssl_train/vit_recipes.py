"""Vision Transformer recipes: what `--recipe cifar10 --arch vit_small` (or `imagenet100`) expands to.

The optimization follows DINO's ViT training (facebookresearch/dino, main_dino.py and its README):
AdamW, lr 5e-4 per 256 images with a 10-epoch linear warm-up and a cosine to 1e-6, weight decay
0.04 -> 0.4 by a cosine, per-tensor gradient clipping at 3.0. DINO / CO-DINO take DINO's ViT head
and schedule (no BatchNorm in the head, 2048-256 MLP, prototypes frozen in the first epoch, stochastic
depth 0.1 in the student, the prototype layer normed for vit_base only, EMA 0.996 -> 1, teacher
temperature 0.04 -> 0.07 over 30 epochs, 2 global crops of scale (0.4, 1) plus 8 local crops of
scale (0.05, 0.4)); MoCo v3 takes its ViT-S values (facebookresearch/moco-v3,
CONFIG.md). BYOL, SimCLR, VICReg and BagSSL have no published ViT recipe: they keep their heads
and temperatures from the ResNet recipes, under DINO's ViT optimization ("ours").
Sources are named as `co-ssl-train recipes` prints them; "DINO" is main_dino.py unless it says
README, "MoCo v3" is CONFIG.md's ViT-S pre-training command.
"""

from __future__ import annotations

VIT_ARCHS = ("vit_tiny", "vit_small", "vit_base")
Setting = tuple[str, str | None, str]

_DINO_OPTIM: tuple[Setting, ...] = (
    ("--optimizer", "adamw", "DINO (recommended with ViTs)"), ("--lr", "5e-4", "DINO"), ("--min-lr", "1e-6", "DINO"),
    ("--warmup-epochs", "10", "DINO"), ("--weight-decay", "0.04", "DINO"), ("--weight-decay-end", "0.4", "DINO"),
    ("--clip-grad", "3.0", "DINO"), ("--global", "cls", "DINO (class token)"),
)
_DINO_METHOD: tuple[Setting, ...] = (
    ("--no-head-bn", None, "DINO (use_bn_in_head=False)"), ("--proj-hidden", "2048", "DINO (DINOHead)"),
    ("--proj-dim", "256", "DINO (DINOHead bottleneck)"), ("--freeze-last-layer", "1", "DINO"),
    ("--dino-warmup-teacher-temp", "0.04", "DINO"), ("--dino-teacher-temp", "0.07", "DINO README (boosting)"),
    ("--dino-warmup-teacher-epochs", "30", "DINO README (boosting)"), ("--dino-student-temp", "0.1", "DINO"),
    ("--local-crops", "8", "DINO"), ("--min-scale", "0.4", "DINO (global_crops_scale)"),
    ("--local-crop-scale-min", "0.05", "DINO"), ("--local-crop-scale-max", "0.4", "DINO"),
)
_MOCO: tuple[Setting, ...] = (
    ("--lr", "1.5e-4", "MoCo v3"), ("--weight-decay", "0.1", "MoCo v3"), ("--weight-decay-end", "0.1", "MoCo v3"),
    ("--warmup-epochs", "40", "MoCo v3"), ("--temperature", "0.2", "MoCo v3"), ("--ema", "0.99", "MoCo v3"),
    ("--proj-hidden", "4096", "MoCo v3"), ("--proj-dim", "256", "MoCo v3"), ("--min-scale", "0.08", "MoCo v3"),
    ("--clip-grad", "0", "MoCo v3 (no clipping)"), ("--min-lr", "0", "MoCo v3 (cosine to 0)"),
)
_BYOL: tuple[Setting, ...] = (("--ema", "0.996", "ours (BYOL paper's ImageNet value)"),
                              ("--proj-hidden", "4096", "BYOL paper"), ("--proj-dim", "256", "BYOL paper"))
_SIMCLR: tuple[Setting, ...] = (("--proj-hidden", "2048", "ours"), ("--proj-dim", "256", "ours"),
                                ("--temperature", "0.2", "ours"))
_VICREG: tuple[Setting, ...] = (("--proj-hidden", "2048", "ours"), ("--proj-dim", "2048", "ours"),
                                ("--min-scale", "0.2", "ours"))


def _per_method(small: bool) -> dict[str, tuple[Setting, ...]]:
    dino = (*_DINO_METHOD, ("--ema", "0.9995" if small else "0.996",
                            "DINO (--momentum_teacher help: 0.9995 at batch 256)" if small else "DINO"),
            ("--dino-prototypes", "4096" if small else "65536", "solo-learn (CIFAR)" if small else "DINO"))
    bag = (("--proj-hidden", "2048", "ours"), ("--proj-dim", "2048", "ours"), ("--patches", "16", "ours"),
           ("--patch-size", "16" if small else "96", "ours"))
    table: dict[str, tuple[Setting, ...]] = {}
    for names, settings in ((("dino", "co-dino"), dino), (("mocov3", "co-mocov3"), _MOCO),
                            (("byol", "co-byol", "byol-mc"), _BYOL), (("simclr", "co-simclr"), _SIMCLR),
                            (("vicreg", "co-vicreg"), _VICREG), (("bagssl",), bag)):
        table.update({m: settings for m in names})
    return table


# dataset -> (description, common settings, per-method settings); --arch is the one asked for
VIT_RECIPES: dict[str, tuple[str, tuple[Setting, ...], dict[str, tuple[Setting, ...]]]] = {
    "cifar10": (
        "CIFAR-10, 32 px, ViT with 4 px patches (8x8 tokens), DINO's ViT optimization, 400 epochs on one GPU",
        (("--dataset", "cifar10", "-"), ("--vit-patch-size", "4", "ours (8x8 tokens at 32 px)"),
         ("--epochs", "400", "ours"), ("--batch-size", "256", "ours"), ("--blur", "off", "solo-learn (CIFAR)"),
         ("--min-scale", "0.08", "solo-learn (CIFAR)"), *_DINO_OPTIM),
        _per_method(small=True)),
    "imagenet100": (
        "ImageNet-100 class folders (--data-root), 224 px, ViT/16, DINO's ViT optimization, 300 epochs, batch 512",
        (("--dataset", "imagefolder", "-"), ("--image-size", "224", "DINO"), ("--vit-patch-size", "16", "DINO"),
         ("--epochs", "300", "DINO README (boosting)"), ("--batch-size", "512", "DINO (64 per GPU, 8 GPUs)"),
         ("--blur", "on", "DINO"), ("--min-scale", "0.08", "BYOL paper"), ("--workers", "8", "ours"), *_DINO_OPTIM),
        _per_method(small=False)),
}


def _dino_vit(arch: str) -> tuple[Setting, ...]:
    """DINO's settings that depend on the ViT: stochastic depth in the student, and whether the prototype
    layer is normed (main_dino.py's --norm_last_layer help: False with vit_small, True with vit_base)."""
    if arch == "vit_base":
        normed: Setting = ("--norm-last-layer", None, "DINO (--norm_last_layer help: True with vit_base)")
    else:
        normed = ("--no-norm-last-layer", None, "DINO (--norm_last_layer help: False with vit_small)"
                  + ("" if arch == "vit_small" else "; vit_tiny as vit_small: ours"))
    return (("--drop-path", "0.1", "DINO (drop_path_rate, student only)"), normed)


# the CO-variants' local grid: as many local vectors as the paper's ResNet map at that resolution
# (CIFAR ResNet-18: 4x4 at 32 px; ResNet-50: 7x7 at 224 px), each the mean of a block of patch tokens;
# and each step the local loss takes half of the grid's positions, drawn at random (an unbiased
# estimate of the all-positions loss): the full-width DINO head at every local vector otherwise costs
# more than a tenth of DINO's step (benchmarks/train_throughput.py --vit-flops, recipe views: CO-DINO /
# DINO FLOPs 0.89 at all 49 positions of ViT-S/16 224 px, 0.90 at all 16 of ViT-tiny/4 32 px)
LOCAL_GRID = {32: 4, 224: 7}  # image size -> n of the n x n grid


def _local(size: int, resnet: str) -> tuple[Setting, ...]:
    """The CO-variants' local settings at `size` px: the grid of `resnet`'s map, half its positions a step."""
    n = LOCAL_GRID[size]
    return (("--local-grid", str(n), f"ours (the {n}x{n} map of the paper's {resnet})"),
            ("--local-positions", str(n * n // 2), "ours (half the grid each step: cost)"))


_LOCAL = {"cifar10": _local(32, "CIFAR ResNet-18"), "imagenet100": _local(224, "ResNet-50 at 224 px")}


def is_vit_arch(arch: str | None) -> bool:
    return arch in VIT_ARCHS


def vit_recipe(name: str, arch: str) -> tuple[str, tuple[Setting, ...], dict[str, tuple[Setting, ...]]] | None:
    """The ViT recipe of dataset `name` for `arch`, `--arch` first (None: no ViT recipe for `name`)."""
    if name not in VIT_RECIPES:
        return None
    description, common, per_method = VIT_RECIPES[name]
    per_method = {m: (*s, *_dino_vit(arch)) if m in ("dino", "co-dino") else s for m, s in per_method.items()}
    per_method = {m: (*s, *_LOCAL[name]) if m.startswith("co-") else s for m, s in per_method.items()}
    return f"{description} ({arch})", (("--arch", arch, "-"), *common), per_method
