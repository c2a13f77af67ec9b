"""Write the figures of one report section as PNG and PDF files, from results JSON alone."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from coanalysis.loading import write_bytes_atomic
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section


def export_section(folders: list[Path], build: Callable[[ReportData], Section | None], out: Path,
                   baseline: str | None = None) -> list[Path]:
    """`<out>/<figure name>.png` and `.pdf` for every figure `build` makes from `folders`; the paths written."""
    import matplotlib.pyplot as plt

    section = build(ReportData.from_folders(folders, baseline))
    written = []
    for block in section.figures if section is not None else []:
        for fmt in ("png", "pdf"):
            buf = io.BytesIO()
            block.figure.savefig(buf, format=fmt, dpi=300 if fmt == "png" else None)
            path = Path(out) / f"{block.name}.{fmt}"
            write_bytes_atomic(path, buf.getvalue())
            written.append(path)
        plt.close(block.figure)
    return written
