"""`coanalysis report`: one self-contained HTML file from results folders, no model needed."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render the HTML report of one or more results folders"
EXAMPLES = """examples:
  coanalysis report reports/results                      # writes reports/results/report.html
  coanalysis report reports/a reports/b --out cmp/report.html --baseline byol

Beside the HTML file: figures/ (each figure as PNG and PDF) and tables/ (each table as CSV and
Markdown), ready for a paper. Only the results JSON is read; no model or dataset is needed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", metavar="DIR", help="results folders (the --out of analysis commands)")
    parser.add_argument("--out", metavar="FILE", help="HTML file to write (default: DIR/report.html of the first DIR)")
    parser.add_argument("--baseline", metavar="NAME", help="model that differences are taken against (default: first)")
    parser.add_argument("--title", help="report title")
    parser.add_argument("--no-export", dest="export", action="store_false",
                        help="write the HTML file only, not figures/ and tables/ beside it")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args: argparse.Namespace) -> None:
    from coanalysis.models.trainer_io import UserError, writable_file
    from coanalysis.report.data import ReportData
    from coanalysis.report.render import render

    for folder in map(Path, args.folders):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"results folder {folder} is a file; give the folder an analysis command wrote (its --out)")
    out = Path(args.out) if args.out else Path(args.folders[0]) / "report.html"
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the HTML file to write, e.g. {out / 'report.html'}")
    writable_file(out, "--out")
    data = ReportData.from_folders([Path(f) for f in args.folders], args.baseline)
    rendered = render(data, out, title=args.title, export=args.export, progress=args.progress)
    print(f"report written to {rendered.path} ({len(rendered.sections)} sections: {', '.join(rendered.sections)})")
    if args.export:
        print(f"figures: {len(rendered.figures)} files in {out.parent / 'figures'}; "
              f"tables: {len(rendered.tables)} files in {out.parent / 'tables'}")
