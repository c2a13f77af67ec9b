"""Building blocks of report sections: tables, figure blocks, sections and shared formatting.

A section module exposes `build(data: ReportData) -> Section | None`; `None` means its results do
not exist and the section is left out. A section that names its `analyses` gets a note for every
model that lacks them or whose result is incomplete, so partial results are never silent.

Takeaway sentences are computed from stored numbers, never written by hand, and are findings
in the sense of PROTOCOLS §11: `cell_takeaway` states each model's largest difference against
the reference with its paired bootstrap interval, n and seeds (`coanalysis.report.findings`),
and `interval_table` gives the matching table, each cell with its interval and the paired
differences against the reference.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from coanalysis.results import stats
from coanalysis.report.data import ReportData
from coanalysis.report.findings import paired_findings


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]  # cells are shown with str()
    caption: str = ""
    name: str = ""  # file stem when exported (default: <section>-table<k>)
    title: str = ""  # a heading above the table

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[_text(v) for v in row] for row in self.rows])
        return buf.getvalue()

    def to_markdown(self) -> str:
        def line(cells: Sequence[Any]) -> str:
            return "| " + " | ".join(_text(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

        lines = [f"**{self.title}**", ""] if self.title else []
        lines += [line(self.columns), "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += [line(row) for row in self.rows]
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"


@dataclass
class FigureBlock:
    name: str  # file stem when exported
    figure: object  # matplotlib Figure
    caption: str
    takeaways: list[str] = field(default_factory=list)


@dataclass
class Details:
    """A collapsible block (opened when printing): a summary line and preformatted text."""

    summary: str
    text: str


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    figures: list[FigureBlock] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    code: str = ""  # preformatted text
    # analyses whose results it shows (default: the one named `key`); models lacking them get a note
    analyses: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)  # shown under the intro
    details: list[Details] = field(default_factory=list)
    takeaways: list[str] = field(default_factory=list)  # findings not tied to a figure (shown with the notes)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ('–' for None)."""
    return "–" if x is None else f"{100 * x:.1f}"


def fmt_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (kwargs or {}).items())


def fmt_x(x: float) -> str:
    """A condition value, short: 0.25, 1e-05, 4."""
    return f"{x:g}"


def cell_takeaway(data: ReportData, results: Sequence[Any], x_of: Callable[[dict], float | None], what: str,
                  unit: str = "", *, note: str = "", skip: Sequence[float] = (0,), quantity: str = "accuracy",
                  x_label: Callable[[float], str] = fmt_x) -> list[str]:
    """Findings (PROTOCOLS §11) from stored cells: each model's largest difference against the
    reference, with its paired image-bootstrap interval, n and seeds (`report.findings`).
    `x_of(cell)` is the cell's condition value (None: not on this curve)."""
    cells = {r.model["name"]: {x_of(c): c for c in r.cells.values() if x_of(c) is not None} for r in results}
    return paired_findings(cells, data.reference(), data.seeds, what=what, unit=unit, skip=skip, quantity=quantity,
                           note=note, x_label=x_label)


def pct_ci(cell: dict | None) -> str:
    """A cell's accuracy in % with its 95% interval: '80.1 [78.3, 81.9]' ('–' when missing)."""
    if not cell or cell.get("accuracy") is None:
        return "–"
    iv = cell.get("interval")
    return f"{100 * cell['accuracy']:.1f}" + (f" [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]" if iv else "")


def diff_ci(cell: dict | None, ref: dict | None) -> str:
    """The paired difference (points) of two cells with its 95% interval; without per-image
    records, the plain difference marked 'no CI'."""
    if not cell or not ref or cell.get("accuracy") is None or ref.get("accuracy") is None:
        return "–"
    a, b = stats.cell_correctness(cell), stats.cell_correctness(ref)
    if a is None or b is None or not stats.same_images(cell, ref):
        return f"{100 * (cell['accuracy'] - ref['accuracy']):+.1f} (no CI)"
    d, lo, hi = stats.paired_difference(a, b)
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def interval_table(data: ReportData, results: Sequence[Any], x_of: Callable[[dict], float | None],
                   column: Callable[[float], str], caption: str, *, first: str = "model", name: str = "",
                   title: str = "") -> Table:
    """Accuracy (%) with its 95% image-bootstrap interval per model and condition, then one row
    per model with its paired difference against the reference ('Δ name − ref', points)."""
    cells = {r.model["name"]: {x_of(c): c for c in r.cells.values() if x_of(c) is not None} for r in results}
    xs = sorted({x for per in cells.values() for x in per})
    rows: list[list[Any]] = [[model] + [pct_ci(per.get(x)) for x in xs] for model, per in cells.items()]
    ref = data.reference()
    if ref in cells and len(cells) > 1:
        rows += [[f"Δ {model} − {ref}"] + [diff_ci(per.get(x), cells[ref].get(x)) for x in xs]
                 for model, per in cells.items() if model != ref]
    return Table([first] + [column(x) for x in xs], rows,
                 caption + " In brackets: 95% percentile bootstrap over images (1 000 resamples); Δ rows: paired "
                 "bootstrap on the same images.", name=name, title=title)
