"""Building blocks of report sections: tables, figure blocks, sections and shared formatting.

A section module exposes `build(data: ReportData) -> Section | None`; `None` means its results do
not exist and the section is left out. A section that names its `analyses` gets a note for every
model that lacks them or whose result is incomplete, so partial results are never silent.

Takeaway sentences are computed from stored numbers, never written by hand, and carry their
sample size: `curve_takeaway` (the largest difference of each model against the reference,
e.g. "co-byol keeps 12.3 points more accuracy than byol at p = 0.75 (n = 10 000, 5 masks)"),
`sample_note` for the "(n = ..., ...)" part, and `curve_table` for the matching table with
the differences against the reference.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from coanalysis.figures.style import Curve, fmt_n
from coanalysis.report.data import ReportData


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


def sample_note(n: int | None, *extra: str) -> str:
    """The sample size part of a takeaway: 'n = 10 000, 5 masks, noise seed 0'."""
    return ", ".join([f"n = {fmt_n(n)}", *[e for e in extra if e]])


def repeats_note(curves: Mapping[str, Curve], what: str = "masks") -> str:
    """'5 masks' when the curves carry a spread over repeats (the fewest repeats of any point)."""
    counts = [r for c in curves.values() if c.repeats for r in c.repeats]
    return f"{min(counts)} {what}" if counts else ""


def curve_takeaway(data: ReportData, curves: Mapping[str, Curve], what: str, unit: str = "", *,
                   n: int | None, note: str = "", x_label: Callable[[float], str] = fmt_x,
                   skip: Sequence[float] = (0,), quantity: str = "accuracy") -> list[str]:
    """One sentence per model: its largest difference (in points) against the reference model over
    the conditions both measured (except `skip`, e.g. the clean condition).

    With a single model (or the reference missing) each model's range is stated instead. Where the
    curves carry a spread and the difference is within it (below the root sum of squares of the
    two stds) the sentence says so.
    """
    ref = data.reference()
    if ref not in curves or len(curves) < 2:
        return [f"{name}: {quantity} goes from {c.y[0]:.1f}% at {what} = {x_label(c.x[0])}{unit} to {c.y[-1]:.1f}% "
                f"at {what} = {x_label(c.x[-1])}{unit} ({sample_note(n, note)})." for name, c in curves.items() if c.x]
    lines = []
    reference = curves[ref]
    for name, curve in curves.items():
        if name == ref:
            continue
        diffs = [(curve.at(x)[0] - reference.at(x)[0], x) for x in curve.x if x in reference.x and x not in skip]
        if not diffs:
            continue
        d, x = max(diffs, key=lambda t: (abs(t[0]), -t[1]))
        spread = math.hypot(curve.at(x)[1], reference.at(x)[1])
        word = "more" if d >= 0 else "less"
        paren = sample_note(n, note) + ("; within the spread over repeats" if abs(d) < spread else "")
        lines.append(f"{name} keeps {abs(d):.1f} points {word} {quantity} than {ref} at {what} = {x_label(x)}{unit} "
                     f"({paren}).")
    return lines


def diff_takeaway(data: ReportData, curves: dict[str, tuple[list[float], list[float]]], what: str, unit: str,
                  n: int, seeds: str) -> list[str]:
    """Largest accuracy difference of each model against the reference over the non-zero
    conditions, for curves given as (xs, accuracies in %) without spread."""
    as_curves = {name: Curve(tuple(xs), tuple(ys)) for name, (xs, ys) in curves.items()}
    return curve_takeaway(data, as_curves, what, unit, n=n, note=seeds)


def curve_table(data: ReportData, curves: Mapping[str, Curve], column: Callable[[float], str], *,
                caption: str, name: str = "", title: str = "", first: str = "model") -> Table:
    """Mean (± std where there is a spread) per model and condition, in %, then one row per model
    with its difference against the reference ('Δ name − ref', in points)."""
    xs = sorted({x for c in curves.values() for x in c.x})

    def cell(c: Curve, x: float) -> str:
        if x not in c.x:
            return "–"
        m, s = c.at(x)
        return f"{m:.1f} ± {s:.1f}" if c.std is not None else f"{m:.1f}"

    rows: list[list[Any]] = [[name] + [cell(c, x) for x in xs] for name, c in curves.items()]
    ref = data.reference()
    if ref in curves and len(curves) > 1:
        for name, c in curves.items():
            if name != ref:
                rows.append([f"Δ {name} − {ref}"] + [f"{c.at(x)[0] - curves[ref].at(x)[0]:+.1f}"
                                                      if x in c.x and x in curves[ref].x else "–" for x in xs])
    return Table([first] + [column(x) for x in xs], rows, caption, name=name, title=title)
