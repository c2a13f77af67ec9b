"""Section: whole versus bag of parts, after BagSSL (PROTOCOLS.md section 10)."""

from __future__ import annotations

from coanalysis.figures.bagssl import bagssl_figure, describe
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, pct_ci


def _ms(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _acc(cell: dict, which: str) -> str:
    """'bag', 'patch' or 'global' accuracy (%) with its stored 95% interval where there is one."""
    return pct_ci({"accuracy": cell.get(f"{which}_accuracy"), "interval": (cell.get("intervals") or {}).get(which)})


def _takeaways(results) -> list[str]:
    lines = []
    for r in results:
        cells = sorted(r.cells.values(), key=lambda c: c["patch_size"])
        if not cells:
            continue
        small = cells[0]
        text = (f"{r.model['name']}: with {small['patch_size']} px patches the mean of the parts has cosine "
                f"{small['cos_whole_bag']['mean']:.3f} to the whole")
        if small.get("bag_accuracy") is not None:
            text += (f", and the bag reaches {_acc(small, 'bag')}% probe accuracy against "
                     f"{_acc(small, 'global')}% for the whole image (95% image-bootstrap intervals)")
        lines.append(text + f" ({describe(r)}).")
    return lines


def build(data: ReportData) -> Section | None:
    results = data.of("bagssl")
    if not results:
        return None
    rows = []
    for r in results:
        for c in sorted(r.cells.values(), key=lambda c: c["patch_size"]):
            rows.append([r.model["name"], str(c["patch_size"]), str(c["patches_per_image"]), _ms(c["cos_whole_bag"]),
                         _ms(c["cos_whole_patch"]), _acc(c, "bag"), _acc(c, "patch"), _acc(c, "global"), str(c["n"])])
    table = Table(["model", "patch (px)", "patches", "cos(whole, mean of parts)", "cos(whole, one part)",
                   "bag probe (%)", "one patch (%)", "whole image (%)", "images"], rows,
                  "Cosines are mean ± std over images; accuracies use the model's probe unchanged on the same images, "
                  "in brackets their 95% image-bootstrap interval (1 000 resamples; one patch: over images of their "
                  "mean over patches).")
    return Section("bagssl", "Whole versus bag of parts",
                   intro="Is the whole-image representation the average of its patch representations (BagSSL; "
                         "PROTOCOLS §10)? Each patch is embedded on its own and the embeddings are averaged.",
                   figures=[FigureBlock("bagssl", bagssl_figure(results, data.colors, data.groups),
                                        "Left: cosine between the whole-image representation and the mean of its patch "
                                        "representations (solid) or a single patch's (dotted). Right: probe accuracy "
                                        "of the bag average, of single patches, and of the whole image (dashed).",
                                        _takeaways(results))],
                   tables=[table])
