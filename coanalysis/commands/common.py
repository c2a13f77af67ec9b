"""Options shared by the analysis commands, and the `Session` they build."""

from __future__ import annotations

import argparse
from pathlib import Path

from coanalysis.pipeline import Session

DEFAULT_OUT = "reports/results"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models")
    g.add_argument("--ckpt", action="append", required=True, metavar="PATH",
                   help="checkpoint: a co-ssl run directory (repeat to compare several models)")
    g.add_argument("--name", action="append", metavar="NAME",
                   help="display name of the matching --ckpt (default: run or file name)")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", help="evaluation dataset (default: the one each checkpoint was trained on)")
    g.add_argument("--data-root", metavar="DIR", help="folder holding the dataset files (torchvision's layout)")
    g.add_argument("--download", action="store_true", help="let torchvision download the dataset (needs network)")
    g.add_argument("--image-size", type=int, metavar="PX", help="input size (default: the checkpoint's training size)")
    g.add_argument("--n", type=int, metavar="N", help="evaluate on a seeded subset of N test images (default: all)")
    g.add_argument("--n-train", type=int, metavar="N",
                   help="fit the probe on a seeded subset of N training images (default: all)")
    g.add_argument("--seed", type=int, default=0, help="seed of the subsets (default: 0)")


def add_run_args(parser: argparse.ArgumentParser, out_help: str = "results folder") -> None:
    g = parser.add_argument_group("run")
    g.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"{out_help} (default: {DEFAULT_OUT})")
    g.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda or cuda:N")
    g.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="inference precision: auto = bf16 on GPU, fp32 on CPU")
    g.add_argument("--batch-size", type=int, default=256, help="inference batch size (default: 256)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader workers for folder datasets")
    g.add_argument("--overwrite", action="store_true",
                   help="replace stored results made with another protocol or checkpoint")
    g.add_argument("--cache-dir", metavar="DIR", help="feature cache (default: $CO_SSL_CACHE or ~/.cache/co-ssl)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def session_from_args(args: argparse.Namespace) -> Session:
    from coanalysis.loading import UserError

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.n_train is not None and args.n_train < 1:
        raise UserError(f"--n-train must be at least 1, got {args.n_train}")
    return Session(out=Path(args.out), dataset=args.dataset, data_root=args.data_root, download=args.download,
                   image_size=args.image_size, n=args.n, n_train=args.n_train, seed=args.seed,
                   device_name=args.device, precision_name=args.precision, batch_size=args.batch_size,
                   workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite,
                   cache_dir=Path(args.cache_dir) if args.cache_dir else None)
