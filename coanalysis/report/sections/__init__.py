"""Report sections in report order. Each module has `build(data) -> Section | None`.

The order follows the issue: models, clean accuracy, noise, corruptions, internal corruption
(dropout), PGD, crop scale, redundancy, ERF, BagSSL, protocol appendix. Each analysis adds its
module to this list when it lands.
"""

from __future__ import annotations

from typing import Callable

from coanalysis.report.data import ReportData
from coanalysis.report.sections import (appendix, autoattack, bagssl, clean, corruptions, crops, dropout, erf, models,
                                        noise, pgd, redundancy, shift, similarity)
from coanalysis.report.sections.base import Details, FigureBlock, Section, Table

SECTIONS: list[Callable[[ReportData], Section | None]] = [
    models.build,
    clean.build,
    noise.build,
    corruptions.build,
    dropout.build,
    pgd.build,
    autoattack.build,
    crops.build,
    shift.build,
    redundancy.build,
    erf.build,
    bagssl.build,
    similarity.build,
    appendix.build,
]

__all__ = ["SECTIONS", "Details", "FigureBlock", "Section", "Table"]
