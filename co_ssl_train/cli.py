"""`co-ssl-train` (and `python -m co_ssl_train`): train, or list methods, architectures, datasets
and recipes.

`co-ssl-train --method co-byol ...` is short for `co-ssl-train train --method co-byol ...`, so
`torchrun --nproc_per_node N -m co_ssl_train --method ...` works too. `--recipe NAME` expands to the
recipe's flags, placed before the user's so that those win. Bad input ends with one line on stderr
and exit code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from co_ssl_train.config_args import add_config_args, config_from_args
from co_ssl_train.errors import UserError
from co_ssl_train.options import OneLineParser

EXAMPLES = """examples:
  co-ssl-train --method co-byol --dataset fashion-mnist --arch resnet18 --epochs 100
  co-ssl-train --recipe cifar10 --method co-dino --data-root ~/data     # a published recipe
  co-ssl-train train --method byol --dataset cifar10 --data-root ~/data --batch-size 512 --lr 1.0
  co-ssl-train --method co-byol --local-weight 0.5 --weight-form convex --min-scale 0.2
  co-ssl-train --method co-byol --arch rf_resnet18 --rf 43 --local-layer layer3 --local-grid 4
  co-ssl-train --method byol-mc --local-crops 6 --knn-every 10       # multi-crop, kNN monitor
  co-ssl-train --run-name my-run --resume            # continue exactly where it stopped
  torchrun --nproc_per_node 4 -m co_ssl_train --recipe imagenet100 --data-root ~/imagenet100
  co-ssl-train methods | archs | datasets | recipes  # what can be chosen
  co-ssl-train recipes cifar10 --method simclr       # the exact command of a recipe
"""

COMMANDS = ("train", "methods", "archs", "datasets", "recipes")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="co-ssl-train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train CO-SSL and baseline self-supervised models; writes checkpoints/<run>/ "
                    "(encoder.safetensors, meta.json, state.pt).",
        epilog=EXAMPLES)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    train = sub.add_parser("train", help="train one model (the default command)", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Train one model. Every option is shown with its default.")
    train.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks instead of one-line errors")
    add_config_args(train)
    sub.add_parser("methods", help="list the SSL methods")
    sub.add_parser("archs", help="list the backbones and their receptive fields")
    sub.add_parser("datasets", help="list the datasets and where their files are looked for")
    recipes = sub.add_parser("recipes", help="list the recipes, or print one as an exact command")
    recipes.add_argument("name", nargs="?", help="recipe to print")
    recipes.add_argument("--method", default=None, help="method whose settings to show (default: the recipe's)")
    recipes.add_argument("--arch", default=None, help="vit_tiny, vit_small or vit_base: the recipe's ViT variant")
    return parser


def _list_methods() -> None:
    from co_ssl_train.methods import METHODS

    for name, spec in METHODS.items():
        print(f"{name:12s} {spec.description}")


def _list_archs() -> None:
    from co_ssl_train.models import ARCHS, build_backbone
    from co_ssl_train.models.resnet import RF_OFFERED, describe_plan, kernel_plan_for_rf, reachable_rfs

    for name, spec in ARCHS.items():
        if "rf" in spec.options:
            reach = reachable_rfs("cifar")
            print(f"{name:18s} RF set by --rf (cifar stem: any odd {reach[0]}..{reach[-1]} px; imagenet stem: "
                  f"{', '.join(str(v) for v in reachable_rfs('imagenet')[:6])}, ...); options: "
                  f"{', '.join(spec.options)}; {spec.description}")
            for rf in (*RF_OFFERED, 0):
                got = build_backbone(name, stem="cifar", width=8, rf=rf).receptive_field()
                print(f"{'':20s}--rf {rf:<3d} cifar stem: RF {got:3d} px  kernels {describe_plan(kernel_plan_for_rf(rf, 'cifar'))}")
        elif spec.family == "vit":
            print(f"{name:18s} RF the whole image (self-attention); options: {', '.join(spec.options)}; "
                  f"{spec.description}")
        elif "stem" in spec.options:
            rf = {stem: build_backbone(name, stem=stem, width=8).receptive_field() for stem in ("imagenet", "cifar")}
            print(f"{name:18s} RF {rf['imagenet']} px (imagenet stem), {rf['cifar']} px (cifar stem); "
                  f"options: {', '.join(spec.options)}; {spec.description}")
        else:
            rf = build_backbone(name, width=8).receptive_field()
            print(f"{name:18s} RF {rf} px; options: {', '.join(spec.options)}; {spec.description}")


def _list_datasets() -> None:
    from co_ssl_train.data import DATASETS

    for name, spec in DATASETS.items():
        print(f"{name:14s} splits {'/'.join(spec.splits):28s} {spec.description}")


def _list_recipes(name: str | None, method: str | None, arch: str | None = None) -> None:
    from co_ssl_train.recipes import RECIPES, format_recipe
    from co_ssl_train.vit_recipes import VIT_RECIPES

    if name is None:
        for key, recipe in RECIPES.items():
            print(f"{key:14s} {recipe.description} (default method {recipe.method})")
        print(f"\nViT variants (--arch vit_tiny|vit_small|vit_base): {', '.join(VIT_RECIPES)}")
        print("co-ssl-train recipes NAME [--method M] [--arch A] prints one; co-ssl-train --recipe NAME [flags] "
              "trains with it")
        return
    print(format_recipe(name, method, arch))


def expand_recipe(argv: list[str]) -> list[str]:
    """`train ... --recipe NAME ...` -> `train <recipe flags> ...` (the user's flags come after, so they win)."""
    if not argv or argv[0] != "train":
        return argv
    pre = OneLineParser(add_help=False)
    pre.add_argument("--recipe")
    pre.add_argument("--method")
    pre.add_argument("--arch")
    known, _ = pre.parse_known_args(argv[1:])
    if not known.recipe:
        return argv
    from co_ssl_train.recipes import recipe_args

    return ["train", *recipe_args(known.recipe, known.method, known.arch), *argv[1:]]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help") and argv[0].startswith("-") \
            and argv != ["--debug"]:
        argv.insert(0, "train")
    debug = "--debug" in argv
    try:
        argv = expand_recipe(argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "train":
            from co_ssl_train.train import train

            cfg = config_from_args(args)
            cfg.validate()  # every setting checked before any data is read or folder made
            train(cfg)
        elif args.command == "methods":
            _list_methods()
        elif args.command == "archs":
            _list_archs()
        elif args.command == "datasets":
            _list_datasets()
        elif args.command == "recipes":
            _list_recipes(args.name, args.method, args.arch)
        else:
            parser.print_help()
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"co-ssl-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a file or folder that cannot be read or written, found only mid-run
        if debug:
            traceback.print_exc()
        print(f"co-ssl-train: error: {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        print(f"co-ssl-train: interrupted; {e.args[0] if e.args else 'nothing was trained'}", file=sys.stderr)
        sys.exit(130)
