"""`coanalysis report`: one self-contained HTML file from results folders, no model needed."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render the HTML report of one or more results folders"
EXAMPLES = """examples:
  coanalysis report reports/results                      # writes reports/results/report.html
  coanalysis report reports/a reports/b --out cmp.html --baseline byol
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="DIR", help="results folders (the --out of analysis commands)")
    parser.add_argument("--out", metavar="FILE", help="HTML file to write (default: DIR/report.html of the first DIR)")
    parser.add_argument("--baseline", metavar="NAME", help="model that differences are taken against (default: first)")
    parser.add_argument("--title", help="report title")


def run(args: argparse.Namespace) -> None:
    from coanalysis.report import render_report

    out = Path(args.out) if args.out else Path(args.folders[0]) / "report.html"
    path = render_report([Path(f) for f in args.folders], out, baseline=args.baseline, title=args.title)
    print(f"report written to {path}")
