"""`coanalysis demo`: the command line of the README's main job; the job itself (presets, training, analyses,
report) is `coanalysis.run.end_to_end`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train BYOL and CO-BYOL on Fashion-MNIST, analyse both and write reports/<name>/report.html"
EXAMPLES = """examples:
  coanalysis demo                         # CPU preset: within 10 minutes on 2 cores
  coanalysis demo --preset gpu            # full ResNet-18, 30 epochs, full test split, on a GPU
  coanalysis demo --download              # fetch Fashion-MNIST with torchvision when online

Interrupted? Run the same command again: finished training and finished analysis cells are kept.
Presets: cpu = ResNet-10 width 16, one epoch over 20 480 images, probe on 10 000 training images,
evaluation on 2 000 test images; gpu = ResNet-18, 30 epochs, full splits; smoke = 2 training
steps, a check that the whole pipeline runs (its numbers mean nothing).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coanalysis.run.end_to_end import PRESETS

    parser.add_argument("--preset", default="cpu", choices=tuple(PRESETS), help="cpu (default), gpu or smoke")
    parser.add_argument("--name", default="demo",
                        help="names the runs (<name>-byol, <name>-co-byol) and the report folder")
    parser.add_argument("--data-root", metavar="DIR", help="folder holding Fashion-MNIST (default: Debian's package)")
    parser.add_argument("--download", action="store_true", help="let torchvision download Fashion-MNIST")
    parser.add_argument("--checkpoints", default="checkpoints", metavar="DIR", help="where runs are written")
    parser.add_argument("--reports", default="reports", metavar="DIR", help="where the report folder is written")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide progress bars (phase lines are still printed)")


def run(args: argparse.Namespace) -> None:
    from coanalysis.run.end_to_end import run_demo
    from coanalysis.results.store import check_model_name

    run_demo(check_model_name(args.name), args.preset, data_root=args.data_root, download=args.download,
             checkpoints=Path(args.checkpoints), reports=Path(args.reports), device=args.device,
             progress=args.progress)
