"""`coanalysis probe`: the two readouts of PROTOCOLS.md section 2 for each checkpoint.

The linear probe and the weighted kNN (cosine, k = 20 and 200, T = 0.07 by default) both run on
cached frozen global features; results go to `<out>/<model>/probe.json`. `coanalysis compare`
runs the same readouts and renders the report.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, assigned_models, collect,
                                       session_from_args)
from coanalysis.models.trainer_io import COUNT, POSITIVE, NumberList

HELP = "linear probe and kNN top-1 on frozen features of one or more checkpoints"
EXAMPLES = """examples:
  coanalysis probe --ckpt checkpoints/demo-co-byol
  coanalysis probe --ckpt moco_v2_800ep_pretrain.pth.tar --dataset cifar10 --image-size 224
  coanalysis probe --ckpt dino_checkpoint.pth --branch student --dataset stl10 --knn-k 10,20,200
"""


def add_readout_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("readouts")
    g.add_argument("--knn-k", type=NumberList(COUNT), default=(20, 200), metavar="K,...",
                   help="kNN neighbour counts (default: 20,200)")
    g.add_argument("--knn-temperature", type=POSITIVE, default=0.07, metavar="T",
                   help="kNN vote temperature: each neighbour votes exp(cos / T) (default: 0.07)")
    g.add_argument("--no-knn", action="store_true", help="linear probe only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_readout_args(parser)
    add_data_args(parser)
    add_run_args(parser)


def run_readouts(args: argparse.Namespace):
    """Probe and kNN of every --ckpt into one results folder; returns (session, rows)."""
    from coanalysis.probes.knn import KNNProtocol
    from coanalysis.run.pipeline import eval_data, open_model, shared_probe

    ks = args.knn_k
    session = session_from_args(args)
    session.knn = None if args.no_knn else KNNProtocol(ks=ks, temperature=args.knn_temperature)
    rows = []
    mine, team = assigned_models(session, args)
    for ckpt, name in mine:
        encoder = open_model(session, ckpt, name)
        test = eval_data(session, encoder)
        _, _, acc = shared_probe(session, encoder, test)
        if session.shards.is_main:
            cell = session.store.load(name, "probe").cells[f"{test.info.split}:n={len(test)}:seed={test.seed}"]
            rows.append((name, encoder.source.format, acc, cell.get("knn", {}), len(test), test.info.name))
    return session, collect(session, team, rows)


def print_rows(rows: list, ks: list[str]) -> None:
    print(f"{'model':24s} {'format':12s} {'probe top-1':>12s}" + "".join(f" {'kNN ' + k:>10s}" for k in ks) + "  data")
    for name, fmt, acc, knn, n, dataset in rows:
        knn_cols = "".join(f" {100 * knn[k]:9.2f}%" if k in knn else f" {'–':>10s}" for k in ks)
        print(f"{name:24s} {fmt:12s} {100 * acc:11.2f}%{knn_cols}  {dataset} test, n = {n}")


def run(args: argparse.Namespace) -> None:
    from coanalysis.distributed.sharding import joined

    session, rows = run_readouts(args)
    if not joined().is_main:
        return
    ks = list(dict.fromkeys(k for row in rows for k in row[3]))
    print_rows(rows, ks)
    print(f"results in {session.store.root}")
