"""The HTML report: `render_report(folders, out)` renders one self-contained file from results JSON
(and exports its figures and tables beside it); `render(data, out)` does the same from a
`ReportData` and says what it wrote."""

from coanalysis.report.data import ReportData
from coanalysis.report.render import Rendered, render, render_report

__all__ = ["ReportData", "Rendered", "render", "render_report"]
