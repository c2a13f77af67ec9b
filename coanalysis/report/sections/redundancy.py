"""Section: redundancy of local representations (PROTOCOLS.md section 8)."""

from __future__ import annotations

from coanalysis.figures.redundancy import above_chance_figure, bars_figure, describe, scatter_figure
from coanalysis.results import stats
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, pct


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _mean_std(stat: dict | None) -> str:
    return "–" if not stat else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _r(cell: dict) -> str:
    r, ci = cell.get("pearson_r"), cell.get("ci95")
    return "–" if r is None else f"{r:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _null(cell: dict) -> str:
    r0, ci = cell.get("r_null"), cell.get("r_null_ci95")
    return "– (schema < 3)" if r0 is None else f"{r0:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _chance(value: float | None) -> str:
    return "" if value is None else f" (chance {value:.3f})"


def _size(cell: dict) -> str:
    size = cell.get("map_size") or ["?", "?"]
    return f"{size[0]}×{size[1]}"


def _global(cell: dict) -> str:
    """`, G = the CLS token` / `, G = the avg readout` for a ViT's readout; nothing for the mean of L."""
    kind = cell.get("global")
    return {"cls": ", G = the CLS token", "avg": ", G = the avg readout"}.get(kind, "")


def _takeaways(data: ReportData, results) -> list[str]:
    ref = data.reference()
    by_name = {r.model["name"]: r for r in results}
    lines = []
    for name, r in by_name.items():
        pairs, sim = r.cells.get("pairs", {}), r.cells.get("similarity", {})
        intra = (sim.get("intra_image") or {}).get("mean")
        if pairs.get("pearson_r") is None:
            continue
        text = f"{name}: local–global correlation r = {_r(pairs)} on its {_size(pairs)} map{_global(pairs)}"
        if pairs.get("r_null") is not None:
            above = pairs["pearson_r"] - pairs["r_null"]
            null_ci = pairs.get("r_null_ci95")
            ci = pairs.get("ci95")
            clear = bool(null_ci and ci and (ci[0] > null_ci[1] or ci[1] < null_ci[0]))
            text += (f", against the chance level r_null = {_null(pairs)} for this map size "
                     f"(r − r_null = {above:+.3f}"
                     + ("" if clear else "; the intervals overlap: not distinguishable from chance") + ")")
        else:
            text += " (no chance level stored: results before schema 3; r is not comparable across map sizes)"
        if intra is not None:
            text += f", intra-image local similarity {intra:.3f}"
        if name != ref and ref in by_name:
            other = by_name[ref].cells.get("pairs", {})
            if other.get("pearson_r") is not None:
                ci_a, ci_b = pairs.get("ci95"), other.get("ci95")
                apart = bool(ci_a and ci_b and (ci_a[0] > ci_b[1] or ci_a[1] < ci_b[0]))
                same_size = other.get("map_size") == pairs.get("map_size")
                if apart and same_size:
                    text += f"; r is {'higher' if pairs['pearson_r'] > other['pearson_r'] else 'lower'} than {ref}'s " \
                            f"{other['pearson_r']:.3f} (95% intervals apart, same map size)"
                else:
                    text += f"; against {ref}'s {other['pearson_r']:.3f}: " + (
                        "within noise (95% intervals overlap)" if same_size else
                        f"not comparable (map sizes {_size(pairs)} and {_size(other)}; compare r − r_null)")
        lines.append(text + f" ({describe(r)}, {stats.seeds_text(data.seeds.get(name, 1))}).")
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
        rows.append([r.model["name"], f"{pairs.get('layer', sim.get('layer', '?'))} ({size[0]}×{size[1]})"
                     + _global(pairs), _r(pairs),
                     _null(pairs),
                     _mean_std(sim.get("intra_image")) + _chance(sim.get("intra_image_null")),
                     _mean_std(sim.get("local_to_global")) + _chance(sim.get("local_to_global_null")),
                     pct(centre.get("global_accuracy")), pct(centre.get("accuracy")),
                     "–" if random.get("accuracy") is None else
                     f"{pct(random['accuracy'])} ± {pct(random.get('std'))}",
                     str(pairs.get("n_images", sim.get("n_images", "?"))), str(pairs.get("n_pairs", "?"))])
    table = Table(["model", "layer (map h×w)", "r(g, l) [95% CI]", "chance r_null [95% CI]", "intra-image sim.",
                   "local-to-global sim.",
                   "probe on G (%)", "centre vector (%)", "random vector (%)", "images", "pairs"], rows,
                  "r_null: the same statistic with each image's local vectors replaced by other images' at the same "
                  "positions (same N, P and map size; PROTOCOLS §12): G is the mean of the L it is compared with, so "
                  "r is above 0 without any structure, the more so on small maps. A ViT's CLS token (G = the CLS "
                  "token) is not computed from the final patch tokens: its r_null keeps each image's CLS and is about "
                  "0. "
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
                                        "and of one local vector (centre, or a random position).")]
                   + _group_figure(data, results),
                   tables=[table])


def _group_figure(data: ReportData, results: list) -> list[FigureBlock]:
    """With seed groups of two or more checkpoints, r beside r_null with the spread over seeds."""
    groups = data.groups
    if all(len(members) < 2 for members in groups.values()):
        return []
    return [FigureBlock("redundancy_groups", above_chance_figure(results, data.colors, groups),
                        "Pearson r per seed group (bars: mean over seeds ± 1 sd, or one checkpoint's bootstrap 95% "
                        "CI) beside its chance level r_null (black), at each group's map size.")]
