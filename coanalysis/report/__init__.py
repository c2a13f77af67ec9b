"""The HTML report: `render_report(folders, out)` renders one self-contained file from results JSON
(and exports its figures and tables beside it); `render(data, out)` does the same from a
`ReportData` and says what it wrote.

May import: `results`, `figures`, `models.trainer_io` (errors and atomic writes; torch-free).
Never torch at module level, an analysis, a model loader or the run layer: a report renders from
results JSON alone.
"""

from coanalysis.report.data import ReportData
from coanalysis.report.render import Rendered, render, render_report

__all__ = ["ReportData", "Rendered", "render", "render_report"]
