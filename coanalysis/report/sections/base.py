"""Building blocks of report sections: tables, figure blocks, sections and shared formatting.

A section module exposes `build(data: ReportData) -> Section | None`; `None` means its results do
not exist and the section is left out. Takeaway sentences are computed from stored numbers and
carry their n and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coanalysis.report.data import ReportData

@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class FigureBlock:
    name: str  # file stem when exported
    figure: object  # matplotlib Figure
    caption: str
    takeaways: list[str] = field(default_factory=list)


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    figures: list[FigureBlock] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    code: str = ""  # preformatted text (protocol appendix)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def fmt_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (kwargs or {}).items())


def diff_takeaway(data: ReportData, curves: dict[str, tuple[list[float], list[float]]], what: str, unit: str,
                   n: int, seeds: str) -> list[str]:
    """Largest accuracy difference of each model against the reference over the non-zero conditions."""
    ref = data.reference()
    if ref not in curves or len(curves) < 2:
        lines = []
        for name, (xs, ys) in curves.items():
            lines.append(f"{name}: accuracy goes from {ys[0]:.1f}% at {what} = {xs[0]:g} to {ys[-1]:.1f}% at "
                         f"{what} = {xs[-1]:g}{unit} (n = {n}, {seeds}).")
        return lines
    lines = []
    rx, ry = curves[ref]
    ref_at = dict(zip(rx, ry))
    for name, (xs, ys) in curves.items():
        if name == ref:
            continue
        diffs = [(y - ref_at[x], x) for x, y in zip(xs, ys) if x in ref_at and x != 0]
        if not diffs:
            continue
        d, x = max(diffs, key=lambda t: abs(t[0]))
        word = "more" if d >= 0 else "less"
        lines.append(f"{name} keeps {abs(d):.1f} points {word} accuracy than {ref} at {what} = {x:g}{unit} "
                     f"(n = {n}, {seeds}).")
    return lines


