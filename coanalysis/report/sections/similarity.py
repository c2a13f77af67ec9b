"""Representation similarity and collapse: CKA between models and layers, RankMe, local vs global rank."""

from __future__ import annotations

from coanalysis.figures.style import fmt_n
from coanalysis.figures.similarity import layers_figure, model_matrix, models_figure, rank_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table


def build(data: ReportData) -> Section | None:
    results = data.of("similarity")
    if not results:
        return None
    p = results[0].protocol
    n = results[0].cells["rank"]["n"]
    d = p["data"]
    what = f"n = {fmt_n(n)} images of {d['dataset']} {d['split']} (subset seed {d['subset_seed']})"
    rows = [[r.model["name"], r.cells["rank"]["dims"], f"{r.cells['rank']['rankme_global']:.1f}",
             f"{r.cells['rank']['rankme_local']:.1f}", fmt_n(r.cells["rank"]["local_rows"]),
             f"{r.cells['rank']['local_over_global']:.2f}" if r.cells["rank"]["local_over_global"] else "–"]
            for r in results]
    rank_table = Table(["model", "dims", "RankMe global", "RankMe local", "local vectors", "local / global"], rows,
                       f"Effective rank (RankMe) of the global features and of local vectors of the last map; {what}, "
                       f"local-vector seed {p['seed']}.")
    figures = [FigureBlock("similarity-rank", rank_figure(results, data.colors, data.baseline),
                           "RankMe of the global features and of the local vectors (higher: less collapsed).")]
    tables = [rank_table]
    if len(results) > 1:
        names, matrix = model_matrix(results, "linear")
        tables.append(Table(["model"] + names, [[a] + [f"{v:.3f}" if v is not None else "–" for v in row]
                                                for a, row in zip(names, matrix)],
                            f"Linear CKA (full batch) of the last layers, {what}."))
        figures.append(FigureBlock("similarity-models", models_figure(results),
                                   f"Unbiased minibatch CKA (batches of {p['cka_batch']}) between the models' last "
                                   f"layers; {what}."))
    figures.append(FigureBlock("similarity-layers", layers_figure(results),
                               f"Unbiased minibatch CKA between the layers of each model; {what}."))
    return Section("similarity", "Representation similarity and collapse",
                   intro="Centered kernel alignment of position-averaged layer features on the same images (linear "
                         "CKA; unbiased minibatch CKA as in pytorch-cka), and RankMe, the exponentiated entropy of "
                         "the normalized singular values, of the global features and of individual local vectors.",
                   figures=figures, tables=tables)
