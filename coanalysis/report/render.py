"""Render one self-contained HTML report from results folders alone, and export its parts.

`render_report(folders, out)` writes
- `out`: one HTML file with every figure embedded as PNG (no network, no external file; opens
  offline and prints, collapsed blocks included);
- `<out dir>/figures/<name>.png|.pdf`: each figure, for papers;
- `<out dir>/tables/<name>.csv|.md`: each table;
all atomically. Sections whose results do not exist are left out; a section that names its
analyses gets a note for models that lack them or whose results are incomplete.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from coanalysis.figures.style import render_figure
from coanalysis.models.trainer_io import package_version, write_bytes_atomic, write_text_atomic
from coanalysis.report.data import ReportData
from coanalysis.report.sections import SECTIONS
from coanalysis.report.sections.base import Section

FIGURES_DIR, TABLES_DIR = "figures", "tables"


@dataclass
class Rendered:
    """What `render` wrote: the HTML, the exported files and every takeaway (section title, line)."""

    path: Path
    sections: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    takeaways: list[tuple[str, str]] = field(default_factory=list)


_NUMBER = re.compile(r"^[-+−Δ]?\s?[\d.,\u202f]+(e[-+]?\d+)?%?( ± [\d.]+)?( ?(M|px|s|min|points))?$")


def _cells(row: list) -> list[dict]:
    """Table cells as text, marked numeric (right-aligned) or not (left-aligned)."""
    out = []
    for value in row:
        text = "" if value is None else str(value)
        out.append({"text": text, "num": bool(_NUMBER.match(text.strip()))})
    return out


def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "item"


class _Names:
    """Unique file stems: '<section>-<name>' ('<name>' when it already starts with the section)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, section: str, name: str) -> str:
        stem = _stem(name if name == section or name.startswith(section + "-") else f"{section}-{name}")
        unique, k = stem, 2
        while unique in self.used:
            unique, k = f"{stem}-{k}", k + 1
        self.used.add(unique)
        return unique


def coverage_notes(data: ReportData, section: Section) -> list[str]:
    """Notes for models lacking a section's analyses, and for incomplete results. A section that
    names no analyses is taken to show the analysis named like its key, when there is one."""
    analyses = section.analyses or tuple(a for a in dict.fromkeys(a for _, a in data.results) if a == section.key)
    notes = []
    for analysis in analyses:
        missing = data.missing(analysis)
        if missing and len(missing) < len(data.names):
            notes.append(f"No {analysis} results for {', '.join(missing)}.")
        for r in data.of(analysis):
            if not r.complete:
                notes.append(f"{r.model['name']}/{analysis} is incomplete: {len(r.cells)} of {r.expected_cells} "
                             "cells (re-run the analysis command to finish it).")
    return notes


def _probe_fit(p: dict) -> str:
    n = (p.get("train_data") or {}).get("n", p.get("n_train"))
    return f"{n} training images, seed {p.get('seed')}" if n is not None else "an unstated training set"


def probe_notes(data: ReportData, section: Section) -> list[str]:
    """A note for each result of the section read by a linear probe (its protocol's `probe` record)
    fitted otherwise than the model's probe result (e.g. `robustness --n-train 1000`, then `probe` on
    the whole training split): its clean accuracy then need not equal the clean-accuracy table's."""
    analyses = section.analyses or (section.key,)
    clean = {r.model["name"]: r.protocol for r in data.of("probe")}
    notes = []
    for analysis in analyses:
        for r in data.of(analysis) if analysis != "probe" else ():
            used, ref = (r.protocol or {}).get("probe"), clean.get(r.model["name"])
            if not isinstance(used, dict) or "train_data" not in used or not isinstance(ref, dict) or used == ref:
                continue
            differ = sorted(k for k in set(used) | set(ref) if used.get(k) != ref.get(k))
            notes.append(f"{r.model['name']}/{analysis} was read by a probe fitted on {_probe_fit(used)}; the "
                         f"clean-accuracy table's probe on {_probe_fit(ref)} (they differ in {', '.join(differ)}), "
                         "so the clean points here need not equal that table.")
    return notes


def build_sections(data: ReportData) -> list[Section]:
    """Every section whose results exist, in report order. A section whose results hold values of
    an unexpected type or shape (a hand-edited or foreign file that still has a result's fields) is
    left out with a note, so one bad file does not end the report."""
    sections = []
    for build in SECTIONS:
        try:
            section = build(data)
        except (TypeError, KeyError, ValueError, IndexError, AttributeError) as e:
            name = build.__module__.rsplit(".", 1)[-1]
            print(f"note: report section {name!r} skipped: its results hold unexpected values "
                  f"({type(e).__name__}: {e})", flush=True)
            continue
        if section is not None:
            sections.append(section)
    return sections


def render(data: ReportData, out: Path, *, title: str | None = None, note: str | None = None,
           export: bool = True, progress: bool = False) -> Rendered:
    """Render `data` to the HTML file `out` (and export figures and tables beside it)."""
    import jinja2
    from tqdm import tqdm

    out = Path(out)
    rendered = Rendered(out)
    names = _Names()
    sections, fig_no, tab_no = [], 0, 0
    for section in tqdm(build_sections(data), desc="report", disable=not progress, leave=False):
        figures = []
        for block in section.figures:
            fig_no += 1
            stem = names(section.key, block.name)
            encoded = render_figure(block.figure, ("png", "pdf") if export else ("png",))
            if export:
                for fmt, payload in encoded.items():
                    path = out.parent / FIGURES_DIR / f"{stem}.{fmt}"
                    write_bytes_atomic(path, payload)
                    rendered.figures.append(path)
            figures.append({"png": base64.b64encode(encoded["png"]).decode(), "caption": block.caption,
                            "takeaways": block.takeaways, "number": fig_no, "file": f"{FIGURES_DIR}/{stem}"})
            rendered.takeaways += [(section.title, line) for line in block.takeaways]
        rendered.takeaways += [(section.title, line) for line in section.takeaways]
        tables = []
        for k, table in enumerate(section.tables, 1):
            tab_no += 1
            stem = names(section.key, table.name or f"table{k}")
            if export:
                for suffix, text in (("csv", table.to_csv()), ("md", table.to_markdown())):
                    path = out.parent / TABLES_DIR / f"{stem}.{suffix}"
                    write_text_atomic(path, text)
                    rendered.tables.append(path)
            tables.append({"table": table, "rows": [_cells(row) for row in table.rows], "number": tab_no,
                           "file": f"{TABLES_DIR}/{stem}"})
        sections.append({"key": section.key, "title": section.title, "intro": section.intro,
                         "notes": (section.takeaways + section.notes + coverage_notes(data, section)
                                   + probe_notes(data, section)),
                         "figures": figures,
                         "tables": tables, "code": section.code, "details": section.details})
        rendered.sections.append(section.key)
    env = jinja2.Environment(loader=jinja2.PackageLoader("coanalysis", "report"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("template.html").render(
        title=title or f"co-ssl report: {', '.join(data.names)}", note=note, sections=sections,
        models=[{"name": n, "color": data.hex_colors[n], "reference": len(data.names) > 1 and n == data.reference()}
                for n in data.names],
        baseline_given=data.baseline is not None, takeaways=rendered.takeaways, folders=data.folders,
        exported=export, version=package_version,
        rendered=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    write_text_atomic(out, html)
    return rendered


def render_report(folders: list[Path], out: Path, *, baseline: str | None = None, title: str | None = None,
                  note: str | None = None, export: bool = True, progress: bool = False) -> Path:
    """Write the report for the results in `folders` to `out` (atomically) and return its path."""
    data = ReportData.from_folders([Path(f) for f in folders], baseline)
    return render(data, Path(out), title=title, note=note, export=export, progress=progress).path
