"""Section: effective receptive fields of local vectors (PROTOCOLS.md section 9)."""

from __future__ import annotations

from coanalysis.results.derived.erf import METHODS
from coanalysis.figures.erf import (METHOD_LABELS, erf_average_figure, erf_grid_figure, erf_size_figure,
                                    method_cells)
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table


def _size(stat: dict | None) -> str:
    return "–" if not stat or stat.get("mean") is None else f"{stat['mean']:.1f} ± {stat['std']:.1f}"


def _rf(cell: dict) -> str:
    """'43 px', 'the whole image (ViT patch token)' or 'unknown'."""
    if cell.get("rf_bound") == "image":
        return "the whole image (ViT patch token)"
    return f"{cell['analytic_rf']} px" if cell.get("analytic_rf") is not None else "unknown"


def _takeaways(results, method: str) -> list[str]:
    lines = []
    for r in results:
        cells = method_cells(r, method)
        centre = next((c for c in cells if tuple(c["coord"]) == (0.5, 0.5)), cells[-1] if cells else None)
        if centre is None:
            continue
        s = centre["sizes"]
        rf = _rf(centre)
        lines.append(f"{r.model['name']}: the unit at ({centre['coord'][0]:g}, {centre['coord'][1]:g}) gathers 50% of "
                     f"its gradient mass within {_size(s.get('50'))} px and 90% within {_size(s.get('90'))} px "
                     f"(analytic RF {rf}; {METHOD_LABELS[method]}, "
                     f"n = {centre['n_images']} images at {centre['input_size'][0]} px).")
    return lines


def build(data: ReportData) -> Section | None:
    results = data.of("erf")
    if not results:
        return None
    methods = [m for m in METHODS if any(method_cells(r, m) for r in results)]
    figures, rows = [], []
    for method in methods:
        label = METHOD_LABELS[method]
        figures.append(FigureBlock(f"erf_grid_{method}", erf_grid_figure(results, data.colors, method),
                                   f"ERF ({label}) of the local vector at each coordinate, drawn over one image; "
                                   "rows are models (the CO-SSL paper's Fig. 4 layout).",
                                   _takeaways(results, method)))
        figures.append(FigureBlock(f"erf_average_{method}", erf_average_figure(results, data.colors, method),
                                   f"ERF ({label}) averaged over the images, with the contours that hold 50% and 90% "
                                   "of its mass; text: sides of the centred 50% and 90% mass squares of the average "
                                   "map and the analytic receptive field."))
        for r in results:
            for c in method_cells(r, method):
                rows.append([r.model["name"], label, f"({c['coord'][0]:g}, {c['coord'][1]:g})",
                             f"{c['map_size'][0]}×{c['map_size'][1]} @ {c['input_size'][0]} px",
                             _size(c["sizes"].get("20")), _size(c["sizes"].get("50")), _size(c["sizes"].get("90")),
                             f"{c.get('support_square') or '–'}",
                             "image" if c.get("rf_bound") == "image" else
                             str(c.get("analytic_rf") if c.get("analytic_rf") is not None else "–"),
                             str(c["n_images"]), c.get("centre_from", "")])
    if "gradient" in methods:
        figures.append(FigureBlock("erf_sizes", erf_size_figure(results, data.colors, "gradient"),
                                   "ERF size: side of the smallest square centred on the unit that holds 50% (solid) "
                                   "and 90% (light) of each image's gradient mass, mean ± std over images; dashed: "
                                   "analytic receptive field."))
    table = Table(["model", "method", "(u, v)", "map @ input", "20% (px)", "50% (px)", "90% (px)", "support (px)",
                   "analytic RF (px)", "images", "centre from"], rows,
                  "Mass squares are centred on the unit's input-space centre (mean ± std over images); support: "
                  "the centred square holding every non-zero pixel of the average map (bounded by the image); "
                  "analytic RF of a ViT patch token: the whole image (self-attention, PROTOCOLS 13).")
    return Section("erf", "Effective receptive fields",
                   intro="Which input pixels a single local vector depends on (PROTOCOLS §9): the gradient of "
                         "s = Σ_c ReLU(L[c, y, x]) with respect to the image, |·| summed over colour channels.",
                   figures=figures, tables=[table])
