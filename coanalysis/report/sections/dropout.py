"""Internal corruption of the local map (PROTOCOLS.md section 5): spatial dropout, channel dropout
and feature noise, mean ± std over masks."""

from __future__ import annotations

from coanalysis.figures.dropout import dropout_curve, dropout_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, diff_takeaway

CAPTIONS = {"spatial": "Accuracy when a fraction p of the local positions is dropped before pooling (the last "
                       "point keeps a single position, p = 1 − 1/(h·w)).",
            "channel": "Accuracy when a fraction p of the channels is zeroed and the rest rescaled by 1/(1 − p).",
            "noise": "Accuracy when Gaussian noise of α × each channel's clean std is added to the local map."}
WHAT = {"spatial": "spatial p", "channel": "channel p", "noise": "α"}


def build(data: ReportData) -> Section | None:
    results = data.of("dropout")
    if not results:
        return None
    p = results[0].protocol
    n, seeds = p["data"]["n"], f"{p['masks']} masks, seed {p['seed']}"
    figures, tables = [], []
    for kind in ("spatial", "channel", "noise"):
        curves = {}
        for r in results:
            xs, ys, _ = dropout_curve(r, kind)
            if xs:
                curves[r.model["name"]] = (xs, ys)
        if not curves:
            continue
        figures.append(FigureBlock(f"dropout-{kind}", dropout_figure(results, data.colors, kind), CAPTIONS[kind],
                                   diff_takeaway(data, curves, WHAT[kind], "", n, seeds)))
        xs = sorted({x for r in results for x in dropout_curve(r, kind)[0]})
        rows = []
        for r in results:
            cx, cy, cs = dropout_curve(r, kind)
            at = {x: f"{y:.1f} ± {s:.1f}" for x, y, s in zip(cx, cy, cs)}
            rows.append([r.model["name"]] + [at.get(x, "–") for x in xs])
        tables.append(Table(["model"] + [f"{WHAT[kind]}={x:.4g}" for x in xs], rows,
                            f"{kind}: probe top-1 (%), mean ± std over masks (n = {n})."))
    return Section("dropout", "Internal corruption of the local representations",
                   intro="The local map is corrupted before global pooling and classified by the unchanged probe "
                         "(PROTOCOLS §5); p = 0 and α = 0 are the clean accuracy.", figures=figures, tables=tables)
