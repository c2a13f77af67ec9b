"""Options shared by the analysis commands, and the `Session` they build."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from coanalysis.models.trainer_io import COUNT, NON_NEGATIVE_INT, POSITIVE, SEED, Number, writable_dir

if TYPE_CHECKING:  # the pipeline imports torch; `coanalysis report` builds this parser without it
    from coanalysis.run.pipeline import Session
    from coanalysis.distributed.sharding import Shards

IMAGE_SIZE = Number(int, low=8)  # the smallest input every ResNet stem takes

DEFAULT_OUT = "reports/results"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("models")
    g.add_argument("--ckpt", action="append", required=True, metavar="PATH",
                   help="checkpoint: a co-ssl run directory, a ResNet checkpoint file (torchvision, timm, "
                        "solo-learn, lightly, mmselfsup, VISSL, DINO, MoCo, SwAV, PyContrast) or a ViT one (DINO, "
                        "DINOv2, MAE, iBOT, MoCo v3, I-JEPA, DeiT, timm); .pth/.pt/.ckpt/.tar/.safetensors; repeat "
                        "to compare several models")
    g.add_argument("--name", action="append", metavar="NAME",
                   help="display name of the matching --ckpt (default: run or file name)")
    add_loading_args(g)


def add_loading_args(g: argparse._ArgumentGroup) -> None:
    from coanalysis.models.formats import FORMATS

    g.add_argument("--format", action="append", metavar="NAME",
                   help=f"force the checkpoint format instead of detecting it from the keys: {', '.join(FORMATS)} "
                        "(once for all --ckpt, or once per --ckpt)")
    g.add_argument("--arch", action="append", metavar="NAME",
                   help="architecture instead of the one read from the weight shapes (once, or once per --ckpt)")
    g.add_argument("--branch", action="append", metavar="NAME",
                   help="which network of a multi-network checkpoint: DINO / iBOT teacher (default) or student; timm "
                        "and PyContrast model (default) or ema; I-JEPA target_encoder (default) or encoder (once, or "
                        "once per --ckpt)")
    g.add_argument("--readout", action="append", choices=("auto", "global", "bag"),
                   help="auto (default): a BagSSL run is read through the bag of patches its meta.json records, "
                        "everything else through the global average; global: always the plain global "
                        "representation; bag: require the bag readout (once, or once per --ckpt)")
    g.add_argument("--global", dest="global_readout", action="append", metavar="cls|avg|cls+avg",
                   help="a ViT's global representation: the CLS token after the final norm, the mean of the patch "
                        "tokens (through fc_norm where the model has one), or both concatenated (default: the "
                        "family's own, PROTOCOLS.md section 13; recorded; once, or once per --ckpt)")
    g.add_argument("--mean", metavar="R,G,B", help="input mean replacing the checkpoint's (default: ImageNet "
                   "statistics for third-party models, the recorded ones for co-ssl runs); inputs stay in [0, 1]")
    g.add_argument("--std", metavar="R,G,B", help="input std replacing the checkpoint's (with --mean)")


def _triple(text: str, flag: str, item: Number) -> list[float]:
    from coanalysis.models.trainer import UserError

    parts = text.split(",")
    if len(parts) != 3:
        raise UserError(f"{flag} takes three comma-separated numbers (R,G,B), got {text!r}")
    return [item.value(p, flag) for p in parts]


def loading_from_args(args: argparse.Namespace) -> tuple[list[dict], tuple[list[float], list[float]] | None]:
    """(load_encoder keywords for each --ckpt, the --mean/--std normalization or None)."""
    from coanalysis.models.trainer import UserError

    per_ckpt: list[dict] = [{} for _ in args.ckpt]
    for flag in ("format", "arch", "branch", "readout", "global_readout"):
        values = getattr(args, flag, None) or []
        if len(values) not in (0, 1, len(args.ckpt)):
            option = "global" if flag == "global_readout" else flag
            raise UserError(f"{len(values)} --{option} values for {len(args.ckpt)} --ckpt; give one for all, "
                            "or one per checkpoint")
        for i, options in enumerate(per_ckpt):
            if values:
                options[flag] = values[0] if len(values) == 1 else values[i]
    if (args.mean is None) != (args.std is None):
        raise UserError("--mean and --std go together; give both")
    normalization = None
    if args.mean is not None:
        normalization = (_triple(args.mean, "--mean", Number(float)),
                         _triple(args.std, "--std", Number(float, low=0, low_open=True)))
    return per_ckpt, normalization


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", help="evaluation dataset (default: the one each checkpoint was trained on)")
    g.add_argument("--data-root", metavar="DIR", help="folder holding the dataset files (torchvision's layout)")
    g.add_argument("--download", action="store_true", help="let torchvision download the dataset (needs network)")
    g.add_argument("--image-size", type=IMAGE_SIZE, metavar="PX",
                   help="input size (default: the checkpoint's training size)")
    g.add_argument("--n", "--eval-n", type=COUNT, metavar="N", dest="n",
                   help="evaluate on a seeded subset of N test images (default: all); under torchrun write --eval-n, "
                        "which torchrun does not mistake for an abbreviation of its own --nnodes")
    g.add_argument("--n-train", type=COUNT, metavar="N",
                   help="fit the probe on a seeded subset of N training images (default: all)")
    g.add_argument("--seed", type=SEED, default=0, help="seed of the subsets (default: 0)")


def add_run_args(parser: argparse.ArgumentParser, out_help: str = "results folder") -> None:
    g = parser.add_argument_group("run")
    g.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"{out_help} (default: {DEFAULT_OUT})")
    g.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda or cuda:N")
    g.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="inference precision: auto = bf16 on GPU, fp32 on CPU")
    g.add_argument("--batch-size", type=COUNT, default=256, help="inference batch size (default: 256)")
    g.add_argument("--workers", type=NON_NEGATIVE_INT, default=0,
                   help="DataLoader workers that decode folder datasets (default: 0, in this process)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace stored results made with another protocol or checkpoint")
    g.add_argument("--cache-dir", metavar="DIR", help="feature cache (default: $CO_SSL_CACHE or ~/.cache/co-ssl)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--dist-timeout", type=POSITIVE, default=300.0, metavar="S",
                   help="under torchrun: seconds without a sign of life from a rank before the others stop "
                        "(default: 300)")


def session_from_args(args: argparse.Namespace) -> Session:
    """The session of an analysis command; every output folder is checked before any work."""
    from coanalysis.run.pipeline import Session, model_names

    per_ckpt, normalization = loading_from_args(args)
    load_options = dict(zip(model_names(args.ckpt, args.name), per_ckpt))
    if args.cache_dir:
        writable_dir(args.cache_dir, "--cache-dir")
    if getattr(args, "figures", None):
        writable_dir(args.figures, "--figures")
    out = writable_dir(args.out, "--out")
    from coanalysis.distributed.sharding import join_shards

    shards = join_shards(args.device, args.dist_timeout)
    device = args.device
    if shards.backend == "nccl" and device in ("auto", "cuda"):
        device = f"cuda:{shards.local_rank}"  # one GPU per rank
    return Session(out=out, dataset=args.dataset, data_root=args.data_root, download=args.download,
                   image_size=args.image_size, n=args.n, n_train=args.n_train, seed=args.seed,
                   device_name=device, precision_name=args.precision, batch_size=args.batch_size,
                   workers=args.workers, progress=not args.no_progress and shards.is_main, overwrite=args.overwrite,
                   cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                   load_options=load_options, normalization=normalization, shards=shards)


def assigned_models(session: Session, args: argparse.Namespace) -> tuple[list[tuple[str, str]], "Shards"]:
    """((ckpt, name) pairs this rank runs, every rank): under torchrun with at least as many models
    as ranks each rank runs its own models alone (`session.shards` becomes a single process); else
    every rank runs every model and splits its cells."""
    from coanalysis.run.pipeline import model_names
    from coanalysis.distributed.sharding import assign_models

    team = session.shards
    mine, session.shards = assign_models(team, list(zip(args.ckpt, model_names(args.ckpt, args.name))))
    return mine, team


def collect(session: Session, team: "Shards", done: list[tuple]) -> list[tuple]:
    """Every rank's finished `(name, ..., Result or JSON value)` tuples on rank 0, in --ckpt order,
    for the command's summary; [] on the other ranks, which print nothing."""
    if team.world == 1:
        return done
    if session.shards is team:  # cells were split: every rank holds every model's results
        return done if team.is_main else []
    import json

    from coanalysis.results.store import Result

    def encode(item):
        return {"result": item.to_json()} if isinstance(item, Result) else {"value": item}

    def decode(item):
        return Result.from_json(item["result"]) if "result" in item else item["value"]

    parts = team.gather(json.dumps([[encode(x) for x in entry] for entry in done]).encode())
    if not team.is_main:
        return []
    entries = [tuple(decode(x) for x in entry) for part in parts for entry in json.loads(part)]
    order = list(session.load_options)
    return sorted(entries, key=lambda entry: order.index(entry[0]))


def finish_section_command(root: Path, build, figures: str | None) -> None:
    """The end of an analysis command: where its results are and, with `--figures DIR`, its report
    section's figures exported there (PNG and PDF) from those results alone."""
    from coanalysis.report.export import export_section
    from coanalysis.distributed.sharding import joined

    if not joined().is_main:  # under torchrun rank 0 speaks for every rank
        return
    print(f"results in {root}; render them with: coanalysis report {root}")
    if figures:
        paths = export_section([root], build, Path(figures))
        print(f"{len(paths)} figure files in {figures}")
