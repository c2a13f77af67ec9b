"""`coanalysis probe`: fit the linear probe of each checkpoint and report its top-1 accuracy."""

from __future__ import annotations

import argparse

from coanalysis.commands.common import add_data_args, add_model_args, add_run_args, session_from_args

HELP = "fit the linear probe on frozen features and report top-1"
EXAMPLES = """examples:
  coanalysis probe --ckpt checkpoints/demo-co-byol
  coanalysis probe --ckpt checkpoints/a --ckpt checkpoints/b --dataset fashion-mnist --n-train 10000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_data_args(parser)
    add_run_args(parser)


def run(args: argparse.Namespace) -> None:
    from coanalysis.pipeline import ensure_probe, eval_data, model_names, open_model

    session = session_from_args(args)
    rows = []
    for ckpt, name in zip(args.ckpt, model_names(args.ckpt, args.name)):
        encoder = open_model(session, ckpt, name)
        test = eval_data(session, encoder)
        _, _, acc = ensure_probe(session, encoder, test)
        rows.append((name, acc, len(test), test.info.name))
    print(f"{'model':24s} {'probe top-1':>12s}  data")
    for name, acc, n, dataset in rows:
        print(f"{name:24s} {100 * acc:11.2f}%  {dataset} test, n = {n}")
    print(f"results in {session.store.root}")
