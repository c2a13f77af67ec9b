"""Parts versus whole (PROTOCOLS.md section 7): accuracy on random crops of decreasing area,
next to each model's training minimum crop scale c_min."""

from __future__ import annotations

from coanalysis.figures.crops import crop_curve, crops_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, cell_takeaway, pct_ci


def build(data: ReportData) -> Section | None:
    results = data.of("crops")
    if not results:
        return None
    p = results[0].protocol
    seeds = f"crop seed {p['seed']}"
    curves = {r.model["name"]: crop_curve(r) for r in results}
    scales = sorted({s for xs, _ in curves.values() for s in xs}, reverse=True)
    rows = []
    for name, (xs, ys) in curves.items():
        config = data.models.get(name, {}).get("config") or {}
        c_min = config.get("min_scale")
        at = {c["scale"]: c for c in data.results[(name, "crops")].cells.values()}
        rows.append([name, f"{c_min:g}" if isinstance(c_min, (int, float)) else "–"]
                    + [pct_ci(at.get(s)) for s in scales])
    table = Table(["model", "training c_min"] + [f"s={s:g}" for s in scales], rows,
                  "Probe top-1 (%) on one random crop of area fraction s per image, resized back to the input size; "
                  "in brackets the 95% image-bootstrap interval.")
    figure = FigureBlock("crops", crops_figure(results, data.colors, data.groups),
                         "Accuracy against the crop's area fraction; bands: 95% image-bootstrap intervals.",
                         cell_takeaway(data, results, lambda c: c["scale"], "s", note=seeds, skip=(1,)))
    return Section("crops", "Parts versus whole: crop-scale accuracy",
                   intro="Each test image is replaced by a random crop covering a fraction s of its area, resized "
                         "back to the input size (PROTOCOLS §7); s = 1 is the clean accuracy.",
                   figures=[figure], tables=[table])
