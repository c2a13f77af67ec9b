"""`coanalysis compare`: the readouts of several checkpoints on one dataset, side by side.

Runs the linear probe and the kNN readout of every `--ckpt` (ours or third-party, any supported
format) on the same evaluation data into one results folder, prints them as one table and renders
the HTML report of that folder. Finished readouts are reused, so adding a model costs one model.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import add_data_args, add_model_args, add_run_args
from coanalysis.commands.probe import add_readout_args, print_rows, run_readouts

HELP = "probe and kNN of several checkpoints on one dataset, in one results folder and one report"
EXAMPLES = """examples:
  coanalysis compare --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --dataset fashion-mnist
  coanalysis compare --ckpt moco_v2.pth.tar --ckpt swav_800ep.pth.tar --ckpt dino_resnet50.pth \\
      --dataset imagefolder --data-root /data/imagenet --name moco --name swav --name dino --out reports/in1k
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    add_readout_args(parser)
    add_data_args(parser)
    add_run_args(parser, out_help="results folder; the report is written to DIR/report.html")
    parser.add_argument("--no-report", action="store_true", help="do not render DIR/report.html")


def run(args: argparse.Namespace) -> None:
    from coanalysis.models.trainer import UserError

    if args.dataset is None:
        raise UserError("compare needs --dataset, so that every model is evaluated on the same data")
    from coanalysis.distributed.sharding import joined

    session, rows = run_readouts(args)
    if not joined().is_main:
        return
    ks = list(dict.fromkeys(k for row in rows for k in row[3]))
    print_rows(rows, ks)
    if args.no_report:
        print(f"results in {session.store.root}; render them with: coanalysis report {session.store.root}")
        return
    from coanalysis.report import render_report

    path = render_report([session.store.root], session.store.root / "report.html")
    print(f"results in {session.store.root}; report written to {path}")
