"""`co-ssl-train` (and `python -m co_ssl_train`): train, or list methods, architectures and datasets.

`co-ssl-train --method co-byol ...` is short for `co-ssl-train train --method co-byol ...`, so
`torchrun -m co_ssl_train --method ...` works too. Bad input ends with one line on stderr and exit
code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from co_ssl_train.config import add_config_args, config_from_args
from co_ssl_train.errors import UserError

EXAMPLES = """examples:
  co-ssl-train --method co-byol --dataset fashion-mnist --arch resnet18 --epochs 100
  co-ssl-train train --method byol --dataset cifar10 --data-root ~/data --batch-size 512 --lr 1.0
  co-ssl-train --method co-byol --local-weight 0.5 --weight-form convex --min-scale 0.2
  co-ssl-train --run-name my-run --resume            # continue exactly where it stopped
  co-ssl-train methods | archs | datasets            # what can be chosen
"""

COMMANDS = ("train", "methods", "archs", "datasets")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def _list_methods() -> None:
    from co_ssl_train.methods import METHODS

    for name, spec in METHODS.items():
        print(f"{name:12s} {spec.description}")


def _list_archs() -> None:
    from co_ssl_train.models import ARCHS, build_backbone

    for name, spec in ARCHS.items():
        rf = {stem: build_backbone(name, stem=stem, width=8).receptive_field() for stem in ("imagenet", "cifar")}
        print(f"{name:18s} RF {rf['imagenet']} px (imagenet stem), {rf['cifar']} px (cifar stem); "
              f"options: {', '.join(spec.options)}; {spec.description}")


def _list_datasets() -> None:
    from co_ssl_train.data import DATASETS

    for name, spec in DATASETS.items():
        print(f"{name:14s} splits {'/'.join(spec.splits):28s} {spec.description}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help") and argv[0].startswith("-") \
            and argv != ["--debug"]:
        argv.insert(0, "train")
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        if args.command == "train":
            from co_ssl_train.train import train

            train(config_from_args(args))
        elif args.command == "methods":
            _list_methods()
        elif args.command == "archs":
            _list_archs()
        elif args.command == "datasets":
            _list_datasets()
        else:
            parser.print_help()
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"co-ssl-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("co-ssl-train: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        sys.exit(130)
