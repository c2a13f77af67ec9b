"""Render one self-contained HTML report (figures embedded as PNG) from results folders alone."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from coanalysis.figures import figure_bytes
from coanalysis.loading import package_version, write_text_atomic
from coanalysis.report.data import ReportData
from coanalysis.report.sections import SECTIONS


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def render_report(folders: list[Path], out: Path, *, baseline: str | None = None, title: str | None = None) -> Path:
    """Write the report for the results in `folders` to `out` (atomically) and return its path."""
    import jinja2

    data = ReportData.from_folders([Path(f) for f in folders], baseline)
    sections = []
    for build in SECTIONS:
        section = build(data)
        if section is None:
            continue
        figures = [{"png": base64.b64encode(figure_bytes(f.figure, "png")).decode(), "caption": f.caption,
                    "takeaways": f.takeaways, "name": f.name} for f in section.figures]
        sections.append({"key": section.key, "title": section.title, "intro": section.intro, "figures": figures,
                         "tables": section.tables, "code": section.code})
    env = jinja2.Environment(loader=jinja2.PackageLoader("coanalysis", "report"),
                             autoescape=jinja2.select_autoescape(["html"]))
    html = env.get_template("template.html").render(
        title=title or f"co-ssl report: {', '.join(data.names)}", sections=sections,
        colors={n: _hex(c) for n, c in data.colors.items()}, baseline=data.baseline, folders=data.folders,
        version=package_version, rendered=dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    out = Path(out)
    write_text_atomic(out, html)
    return out
