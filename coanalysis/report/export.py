"""Write the figures of one report section as PNG (300 dpi, for papers) and PDF files, from results
JSON alone: what `--figures DIR` of the redundancy, erf and bagssl commands writes."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from coanalysis.figures.style import render_figure
from coanalysis.models.trainer_io import write_bytes_atomic
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section


def export_section(folders: list[Path], build: Callable[[ReportData], Section | None], out: Path,
                   baseline: str | None = None) -> list[Path]:
    """`<out>/<figure name>.png` and `.pdf` for every figure `build` makes from `folders`; the paths written."""
    section = build(ReportData.from_folders(folders, baseline))
    written = []
    for block in section.figures if section is not None else []:
        for fmt, payload in render_figure(block.figure, ("png", "pdf"), dpi=300).items():
            path = Path(out) / f"{block.name}.{fmt}"
            write_bytes_atomic(path, payload)
            written.append(path)
    return written
