"""Internal corruption of the local map (PROTOCOLS.md section 5): spatial dropout, channel dropout
and feature noise, mean ± std over masks."""

from __future__ import annotations

from coanalysis.figures.dropout import dropout_curve, dropout_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, cell_takeaway, diff_ci

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
        if not any(dropout_curve(r, kind)[0] for r in results):
            continue

        def x_of(cell: dict, kind: str = kind) -> float | None:
            return float(cell.get("p_value", cell.get("p", cell.get("alpha")))) if cell.get("kind") == kind else None

        figures.append(FigureBlock(f"dropout-{kind}", dropout_figure(results, data.colors, kind, data.groups), CAPTIONS[kind],
                                   cell_takeaway(data, results, x_of, WHAT[kind], note=seeds,
                                                 x_label=lambda x: f"{x:.4g}")))
        xs = sorted({x for r in results for x in dropout_curve(r, kind)[0]})
        rows = []
        for r in results:
            cx, cy, cs = dropout_curve(r, kind)
            ivs = {x_of(c): c.get("interval") for c in r.cells.values() if x_of(c) is not None}
            at = {x: f"{y:.1f} ± {s:.1f}" + (f" [{100 * ivs[x][0]:.1f}, {100 * ivs[x][1]:.1f}]" if ivs.get(x) else "")
                  for x, y, s in zip(cx, cy, cs)}
            rows.append([r.model["name"]] + [at.get(x, "–") for x in xs])
        ref = data.reference()
        by = {r.model["name"]: {x_of(c): c for c in r.cells.values() if x_of(c) is not None} for r in results}
        if ref in by and len(by) > 1:
            rows += [[f"Δ {m} − {ref}"] + [diff_ci(per.get(x), by[ref].get(x)) for x in xs]
                     for m, per in by.items() if m != ref]
        tables.append(Table(["model"] + [f"{WHAT[kind]}={x:.4g}" for x in xs], rows,
                            f"{kind}: probe top-1 (%), mean ± std over masks, in brackets the 95% bootstrap interval "
                            f"resampling images and masks (n = {n}); Δ rows: paired bootstrap over images, mean over "
                            "masks."))
    return Section("dropout", "Internal corruption of the local representations",
                   intro="The local map is corrupted before global pooling and classified by the unchanged probe "
                         "(PROTOCOLS §5); p = 0 and α = 0 are the clean accuracy.", figures=figures, tables=tables)
