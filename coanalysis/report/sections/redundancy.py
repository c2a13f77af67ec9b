"""Section: redundancy of local representations (PROTOCOLS.md section 8)."""

from __future__ import annotations

from coanalysis.figures.redundancy import bars_figure, describe, scatter_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, pct


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _mean_std(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _r(cell: dict) -> str:
    r, ci = cell.get("pearson_r"), cell.get("ci95")
    return "–" if r is None else f"{r:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _takeaways(data: ReportData, results) -> list[str]:
    ref = data.reference()
    by_name = {r.model["name"]: r for r in results}
    lines = []
    for name, r in by_name.items():
        pairs, sim = r.cells.get("pairs", {}), r.cells.get("similarity", {})
        intra = (sim.get("intra_image") or {}).get("mean")
        if pairs.get("pearson_r") is None:
            continue
        text = f"{name}: local–global correlation r = {_r(pairs)}"
        if intra is not None:
            text += f", intra-image local similarity {intra:.3f}"
        if name != ref and ref in by_name:
            other = by_name[ref].cells.get("pairs", {}).get("pearson_r")
            if other is not None:
                text += f"; r is {'higher' if pairs['pearson_r'] > other else 'lower'} than {ref}'s {other:.3f}"
        lines.append(text + f" ({describe(r)}).")
    return lines


def build(data: ReportData) -> Section | None:
    results = data.of("redundancy")
    if not results:
        return None
    rows = []
    for r in results:
        pairs, sim = r.cells.get("pairs", {}), r.cells.get("similarity", {})
        centre, random = r.cells.get("part=centre", {}), r.cells.get("part=random", {})
        size = pairs.get("map_size") or sim.get("map_size") or ["?", "?"]
        rows.append([r.model["name"], f"{pairs.get('layer', sim.get('layer', '?'))} ({size[0]}×{size[1]})", _r(pairs),
                     _mean_std(sim.get("intra_image")), _mean_std(sim.get("local_to_global")),
                     pct(centre.get("global_accuracy")), pct(centre.get("accuracy")),
                     "–" if random.get("accuracy") is None else
                     f"{pct(random['accuracy'])} ± {pct(random.get('std'))}",
                     str(pairs.get("n_images", sim.get("n_images", "?"))), str(pairs.get("n_pairs", "?"))])
    table = Table(["model", "layer (map)", "r(g, l) [95% CI]", "intra-image sim.", "local-to-global sim.",
                   "probe on G (%)", "centre vector (%)", "random vector (%)", "images", "pairs"], rows,
                  "Similarities are mean ± std over images; single-vector accuracies use the model's probe unchanged, "
                  "on the same images as 'probe on G'; the random-vector accuracy is mean ± std over draws.")
    return Section("redundancy", "Redundancy of local representations",
                   intro="How much each local vector already says about the whole image (PROTOCOLS §8): for random "
                         "image pairs, the cosine similarity of their global representations against that of their "
                         "local vectors (the CO-SSL paper's Fig. 3B), the similarity of local vectors within an "
                         "image and to their own global vector, and the probe's accuracy when one local vector "
                         "stands in for the global one.",
                   figures=[FigureBlock("redundancy_scatter", scatter_figure(results, data.colors),
                                        "Global vs local similarity of random image pairs; line: least-squares fit; "
                                        "legend: Pearson r with its bootstrap 95% CI (images resampled).",
                                        _takeaways(data, results)),
                            FigureBlock("redundancy_bars", bars_figure(results, data.colors),
                                        "Left: within-image similarities. Right: probe accuracy of the global vector "
                                        "and of one local vector (centre, or a random position).")],
                   tables=[table])
