"""Report sections in report order. Each module has `build(data) -> Section | None`."""

from __future__ import annotations

from typing import Callable

from coanalysis.report.data import ReportData
from coanalysis.report.sections import appendix, clean, corruptions, crops, dropout, models, noise, pgd
from coanalysis.report.sections.base import FigureBlock, Section, Table

SECTIONS: list[Callable[[ReportData], Section | None]] = [
    models.build,
    clean.build,
    noise.build,
    corruptions.build,
    dropout.build,
    pgd.build,
    crops.build,
    appendix.build,
]

__all__ = ["SECTIONS", "FigureBlock", "Section", "Table"]
