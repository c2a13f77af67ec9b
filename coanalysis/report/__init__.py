"""The HTML report: `render_report(folders, out)` renders one self-contained file from results JSON."""

from coanalysis.report.render import render_report

__all__ = ["render_report"]
