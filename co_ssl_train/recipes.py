"""Published recipes: the `RECIPES` table, one short entry per dataset.

A recipe is a list of command-line flags, each with its source: "paper" (the CO-SSL paper),
another paper it names (BYOL, SimCLR, MoCo v3, DINO, VICReg), "solo-learn" (that library's
published recipe for the dataset, `scripts/pretrain/<dataset>/<method>.yaml`), a method's official
code, or "ours" where none says. LARS follows each source too: solo-learn's recipes use trust
coefficient 0.02 with clipping (`clip_lr`); BYOL, SimCLR, MoCo v3, DINO (ResNet-50) and VICReg on
ImageNet use 1e-3 without clipping; all of them exclude biases and norm parameters from LARS
adaptation and weight decay. Method-specific values
(learning rate, heads, temperatures) sit under the method; the flags of `--method`'s entry are
applied after the common ones. `co-ssl-train --recipe cifar10 --method co-byol ...` expands to the
recipe's flags followed by the user's, so any flag given on the command line wins;
`co-ssl-train recipes cifar10 --method co-byol` prints the exact command.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from co_ssl_train.config import TrainConfig
from co_ssl_train.config_args import add_config_args, config_from_args
from co_ssl_train.errors import UserError
from co_ssl_train.vit_recipes import VIT_RECIPES, is_vit_arch, vit_recipe

Setting = tuple[str, str | None, str]  # (flag, value or None for a switch, source)


@dataclass(frozen=True)
class Recipe:
    description: str
    method: str  # the default method
    common: tuple[Setting, ...]
    per_method: dict[str, tuple[Setting, ...]] = field(default_factory=dict)


def _same(methods: tuple[str, ...], settings: tuple[Setting, ...]) -> dict[str, tuple[Setting, ...]]:
    return {m: settings for m in methods}


_BYOL = ("byol", "co-byol", "byol-mc")
_SIMCLR = ("simclr", "co-simclr")
_MOCO = ("mocov3", "co-mocov3")
_DINO = ("dino", "co-dino")
_VICREG = ("vicreg", "co-vicreg")
_CO_COMMON: tuple[Setting, ...] = (
    ("--local-weight", "0.5", "paper"), ("--weight-form", "additive", "paper"), ("--local-grid", "0", "ours"),
)

# small images (32 px): ResNet-18 with the CIFAR stem; solo-learn's CIFAR values per method
_SMALL_PER_METHOD: dict[str, tuple[Setting, ...]] = {
    **_same(_BYOL, (("--lr", "1.0", "solo-learn"), ("--weight-decay", "1e-5", "solo-learn"),
                    ("--ema", "0.99", "solo-learn"), ("--proj-hidden", "4096", "solo-learn"),
                    ("--proj-dim", "256", "solo-learn"))),
    **_same(_SIMCLR, (("--lr", "0.4", "solo-learn"), ("--weight-decay", "1e-4", "solo-learn"),
                      ("--proj-hidden", "2048", "solo-learn"), ("--proj-dim", "256", "solo-learn"),
                      ("--temperature", "0.2", "solo-learn"))),
    **_same(_MOCO, (("--lr", "0.3", "solo-learn"), ("--weight-decay", "1e-6", "solo-learn"),
                    ("--ema", "0.99", "solo-learn"), ("--proj-hidden", "4096", "solo-learn"),
                    ("--proj-dim", "256", "solo-learn"), ("--temperature", "0.2", "solo-learn"))),
    **_same(_DINO, (("--lr", "0.3", "solo-learn"), ("--weight-decay", "1e-6", "solo-learn"),
                    ("--ema", "0.9995", "solo-learn"), ("--proj-hidden", "2048", "solo-learn"),
                    ("--proj-dim", "256", "solo-learn"), ("--dino-prototypes", "4096", "solo-learn"))),
    **_same(_VICREG, (("--lr", "0.3", "solo-learn"), ("--weight-decay", "1e-4", "solo-learn"),
                      ("--proj-hidden", "2048", "solo-learn"), ("--proj-dim", "2048", "solo-learn"),
                      ("--min-scale", "0.2", "solo-learn"))),
    "bagssl": (("--lr", "0.3", "ours"), ("--weight-decay", "1e-4", "ours"), ("--proj-hidden", "2048", "ours"),
               ("--proj-dim", "2048", "ours"), ("--patch-size", "16", "ours"), ("--patches", "16", "ours")),
}

# solo-learn's LARS (every CIFAR and ImageNet-100 recipe): eta 0.02, clip_lr, exclude_bias_n_norm
_SOLO_LARS: tuple[Setting, ...] = (
    ("--optimizer", "lars", "solo-learn"), ("--lars-eta", "0.02", "solo-learn"), ("--lars-clip", None, "solo-learn"),
    ("--exclude-bias-norm", None, "solo-learn"),
)


def _paper_lars(source: str) -> tuple[Setting, ...]:
    """LARS as the ImageNet papers and their code run it: eta 1e-3, no clipping, biases and norms excluded."""
    return (("--lars-eta", "1e-3", source), ("--no-lars-clip", None, source), ("--exclude-bias-norm", None, source))


_SMALL_COMMON: tuple[Setting, ...] = (
    ("--arch", "resnet18", "solo-learn"), ("--stem", "cifar", "solo-learn"), ("--batch-size", "256", "solo-learn"),
    *_SOLO_LARS, ("--warmup-epochs", "10", "solo-learn"),
    ("--min-scale", "0.08", "solo-learn"), ("--blur", "off", "solo-learn"), *_CO_COMMON,
)

RECIPES: dict[str, Recipe] = {
    "cifar10": Recipe(
        "CIFAR-10, 32 px, ResNet-18 (CIFAR stem), 1000 epochs on one GPU", "co-byol",
        (("--dataset", "cifar10", "-"), ("--epochs", "1000", "solo-learn"), *_SMALL_COMMON),
        _SMALL_PER_METHOD),
    "fashion-mnist": Recipe(
        "Fashion-MNIST resized to 32 px RGB, ResNet-18 (CIFAR stem), 200 epochs on one GPU", "co-byol",
        (("--dataset", "fashion-mnist", "-"), ("--epochs", "200", "ours"), *_SMALL_COMMON),
        _SMALL_PER_METHOD),
    "imagenet100": Recipe(
        "ImageNet-100 class folders (--data-root), 224 px, ResNet-18, 400 epochs, batch 256", "co-byol",
        (("--dataset", "imagefolder", "-"), ("--arch", "resnet18", "solo-learn"), ("--stem", "imagenet", "solo-learn"),
         ("--image-size", "224", "solo-learn"), ("--epochs", "400", "solo-learn"), ("--batch-size", "256", "solo-learn"),
         *_SOLO_LARS, ("--warmup-epochs", "10", "solo-learn"),
         ("--min-scale", "0.08", "BYOL paper"), ("--blur", "on", "BYOL paper"), ("--workers", "8", "ours"),
         *_CO_COMMON),
        {**_same(_BYOL, (("--lr", "0.5", "solo-learn"), ("--weight-decay", "1e-6", "solo-learn"),
                         ("--ema", "0.99", "solo-learn"), ("--proj-hidden", "4096", "solo-learn"),
                         ("--proj-dim", "256", "solo-learn"))),
         **_same(_SIMCLR, (("--lr", "0.4", "ours"), ("--weight-decay", "1e-5", "ours"),
                           ("--proj-hidden", "2048", "ours"), ("--proj-dim", "256", "ours"),
                           ("--temperature", "0.2", "ours"))),
         **_same(_MOCO, (("--lr", "0.3", "ours"), ("--weight-decay", "1e-5", "ours"), ("--ema", "0.99", "ours"),
                         ("--proj-hidden", "4096", "ours"), ("--proj-dim", "256", "ours"),
                         ("--temperature", "0.2", "ours"))),
         **_same(_DINO, (("--lr", "0.3", "ours"), ("--weight-decay", "1e-6", "ours"), ("--ema", "0.99", "ours"),
                         ("--proj-hidden", "2048", "ours"), ("--proj-dim", "256", "ours"),
                         ("--dino-prototypes", "4096", "ours"))),
         **_same(_VICREG, (("--lr", "0.3", "ours"), ("--weight-decay", "1e-4", "ours"),
                           ("--proj-hidden", "2048", "ours"), ("--proj-dim", "2048", "ours"),
                           ("--min-scale", "0.2", "ours"))),
         "bagssl": (("--lr", "0.3", "ours"), ("--weight-decay", "1e-4", "ours"), ("--proj-hidden", "2048", "ours"),
                    ("--proj-dim", "2048", "ours"), ("--patch-size", "96", "ours"), ("--patches", "16", "ours"))}),
    "imagenet1k": Recipe(
        "ImageNet-1K class folders (--data-root), 224 px, ResNet-50, 100 epochs, batch 4096 over GPUs", "co-byol",
        (("--dataset", "imagefolder", "-"), ("--arch", "resnet50", "paper"), ("--stem", "imagenet", "BYOL paper"),
         ("--image-size", "224", "BYOL paper"), ("--epochs", "100", "paper"), ("--batch-size", "4096", "BYOL paper"),
         ("--optimizer", "lars", "BYOL paper"), ("--warmup-epochs", "10", "BYOL paper"),
         ("--min-scale", "0.08", "BYOL paper"), ("--blur", "on", "BYOL paper"), ("--workers", "10", "ours"),
         *_CO_COMMON),
        {**_same(_BYOL, (("--lr", "0.2", "BYOL paper"), ("--weight-decay", "1.5e-6", "BYOL paper"),
                         ("--ema", "0.996", "BYOL paper"), ("--proj-hidden", "4096", "BYOL paper"),
                         ("--proj-dim", "256", "BYOL paper"), *_paper_lars("BYOL paper"))),
         **_same(_SIMCLR, (("--lr", "0.3", "SimCLR paper"), ("--weight-decay", "1e-6", "SimCLR paper"),
                           ("--proj-hidden", "2048", "SimCLR paper"), ("--proj-dim", "128", "SimCLR paper"),
                           ("--temperature", "0.1", "SimCLR paper"), *_paper_lars("SimCLR paper"))),
         **_same(_MOCO, (("--lr", "0.6", "MoCo v3 paper"), ("--weight-decay", "1e-6", "MoCo v3 paper"),
                         ("--ema", "0.99", "MoCo v3 paper"), ("--proj-hidden", "4096", "MoCo v3 paper"),
                         ("--proj-dim", "256", "MoCo v3 paper"), ("--temperature", "1.0", "MoCo v3 paper"),
                         *_paper_lars("MoCo v3 code"))),
         **_same(_DINO, (("--lr", "0.3", "ours"), ("--weight-decay", "1e-6", "ours"), ("--ema", "0.996", "DINO paper"),
                         ("--proj-hidden", "2048", "DINO paper"), ("--proj-dim", "256", "DINO paper"),
                         ("--dino-prototypes", "65536", "DINO paper"), *_paper_lars("DINO code"))),
         **_same(_VICREG, (("--lr", "0.2", "VICReg paper"), ("--weight-decay", "1e-6", "VICReg paper"),
                           ("--proj-hidden", "8192", "VICReg paper"), ("--proj-dim", "8192", "VICReg paper"),
                           *_paper_lars("VICReg code"))),
         "bagssl": (("--lr", "0.2", "ours"), ("--weight-decay", "1e-6", "ours"), ("--proj-hidden", "8192", "ours"),
                    ("--proj-dim", "8192", "ours"), ("--patch-size", "96", "ours"), ("--patches", "16", "ours"),
                    *_paper_lars("ours"))}),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]


def _recipe_for(name: str, arch: str | None) -> Recipe:
    """The recipe `name`, or its Vision Transformer variant (vit_recipes.py) when `arch` is a ViT."""
    recipe = get_recipe(name)
    if not is_vit_arch(arch):
        return recipe
    vit = vit_recipe(name, arch)
    if vit is None:
        raise UserError(f"recipe {name} has no ViT variant; ViT recipes: {', '.join(VIT_RECIPES)}")
    description, common, per_method = vit
    return Recipe(description, "co-dino", (*common, *_CO_COMMON), per_method)


def recipe_settings(name: str, method: str | None = None, arch: str | None = None) -> list[Setting]:
    """The recipe's settings for `method` (default: the recipe's), common ones first; later
    settings of the same flag replace earlier ones. A ViT `arch` selects the recipe's ViT variant."""
    recipe = _recipe_for(name, arch)
    method = method or recipe.method
    settings = [("--method", method, "-"), *recipe.common, *recipe.per_method.get(method, ())]
    if not method.startswith("co-"):
        settings = [s for s in settings if s not in _CO_COMMON]
    merged: dict[str, Setting] = {}
    for s in settings:
        merged.pop(s[0], None)
        merged[s[0]] = s
    return list(merged.values())


def recipe_args(name: str, method: str | None = None, arch: str | None = None) -> list[str]:
    """The recipe as command-line arguments, e.g. `['--method', 'co-byol', '--dataset', 'cifar10', ...]`."""
    args: list[str] = []
    for flag, value, _ in recipe_settings(name, method, arch):
        args += [flag] if value is None else [flag, value]
    return args


def format_recipe(name: str, method: str | None = None, arch: str | None = None) -> str:
    """Each setting with its source, then the exact command the recipe expands to."""
    settings = recipe_settings(name, method, arch)
    rows = [f"  {flag:28s} {'' if value is None else value:10s} {'' if source == '-' else source}"
            for flag, value, source in settings]
    command = " ".join(["co-ssl-train", "train", *recipe_args(name, method, arch)])
    return "\n".join([f"recipe {name}: {_recipe_for(name, arch).description}", *rows, "", "exact command:",
                      f"  {command} --out checkpoints --run-name <name>"])


def recipe_config(name: str, method: str | None = None, arch: str | None = None, **overrides) -> TrainConfig:
    """The `TrainConfig` that `co-ssl-train --recipe NAME --method M --arch A` trains, parsed from the
    recipe's flags as the command line parses them, with `overrides` (field names) replaced: what a
    benchmark uses to time exactly a recipe's settings."""
    parser = argparse.ArgumentParser(add_help=False)
    add_config_args(parser)
    cfg = config_from_args(parser.parse_args(recipe_args(name, method, arch)))
    return dataclasses.replace(cfg, **overrides)
