"""Distribution shift: probe accuracy on ImageNet-R, -A, -Sketch, -V2 and -3DCC, with the class
subset each set was scored on."""

from __future__ import annotations

from coanalysis.figures.style import fmt_n
from coanalysis.figures.shift import SETS_3DCC, set_accuracies, severity_curve, severity_figure, sets_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, pct_ci


def _mapping(results) -> list[str]:
    """One line per set: how many classes it is scored on and where the class list comes from."""
    seen: dict[str, str] = {}
    for r in results:
        for cell in r.cells.values():
            if cell.get("set") and cell["set"] not in seen:
                how = "argmax over those classes only" if cell["restricted"] else "all probe classes"
                seen[cell["set"]] = f"{cell['set']}: {cell['classes']} classes ({cell['class_list']}; {how})"
    return list(seen.values())


def build(data: ReportData) -> Section | None:
    results = data.of("shift")
    if not results:
        return None
    p = results[0].protocol
    sets = list(dict.fromkeys(s for r in results for s in set_accuracies(r)))
    rows = []
    for r in results:
        acc = set_accuracies(r)
        n = {}
        for cell in r.cells.values():
            n[cell["set"]] = n.get(cell["set"], 0) + cell["n"]
        single = {c["set"]: c for c in r.cells.values() if c.get("set") != SETS_3DCC}
        rows.append([r.model["name"]] + [(pct_ci(single[s]) if s in single else f"{acc[s]:.1f}")
                                         + f" (n = {fmt_n(n[s])})" if s in acc else "–" for s in sets])
    tables = [Table(["model"] + sets, rows, "Probe top-1 (%) per set, in brackets its 95% image-bootstrap interval; "
                                            "ImageNet-3DCC is the mean over its corruption × severity cells (n summed "
                                            "over them; per-cell intervals in the table below).")]
    figures = [FigureBlock("shift-sets", sets_figure(results, data.colors, data.baseline),
                           "Probe accuracy on each distribution-shift set.")]
    if any(severity_curve(r)[0] for r in results):
        figures.append(FigureBlock("shift-3dcc", severity_figure(results, data.colors, data.groups),
                                   f"ImageNet-3DCC accuracy against severity, mean over {len(p['corruptions'])} "
                                   "corruptions."))
        keys = [k for k in results[0].cells if k.startswith(SETS_3DCC)]
        tables.append(Table(["cell"] + [r.model["name"] for r in results],
                            [[k] + [pct_ci(r.cells.get(k)) for r in results]
                             for k in keys], "ImageNet-3DCC probe top-1 (%) per corruption and severity."))
    subset = "all images" if p["n"] is None else f"n = {p['n']} per cell"
    return Section("shift", "Distribution shift (ImageNet-R, -A, -Sketch, -V2, -3DCC)",
                   intro="The ImageNet probe on pre-rendered shifted test sets, preprocessed as the evaluation split "
                         f"(subset seed {p['seed']}, {subset}).",
                   notes=_mapping(results), figures=figures, tables=tables)
