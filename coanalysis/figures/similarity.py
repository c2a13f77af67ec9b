"""Similarity figures: the model × model CKA heatmap of the last layers, each model's layer × layer
CKA heatmap, and RankMe of the global features next to that of the local vectors."""

from __future__ import annotations

from coanalysis.figures.style import fmt_n, grouped_bars, heatmap, new_panels
from coanalysis.results.store import Result


def model_matrix(results: list[Result], kind: str = "unbiased") -> tuple[list[str], list[list[float | None]]]:
    """(names, CKA of each pair of models' last layers) from the `cka:<other>` cells."""
    names = [r.model["name"] for r in results]
    rows = []
    for r in results:
        row = []
        for other in names:
            cell = r.cells.get(f"cka:{other}")
            row.append(cell[kind][-1][-1] if cell else None)
        rows.append(row)
    return names, rows


def models_figure(results: list[Result], kind: str = "unbiased"):
    names, rows = model_matrix(results, kind)
    side = 1.0 + 0.7 * len(names)
    fig, axes = new_panels(1, 1, side + 1.6, side)
    heatmap(axes[0][0], rows, names, names, vmin=0.0, vmax=1.0, fmt="{:.2f}", colorbar=f"CKA ({kind})")
    n = results[0].cells["rank"]["n"]
    axes[0][0].set_title(f"CKA of the last layers (n = {fmt_n(n)} images)")
    axes[0][0].tick_params(axis="x", labelrotation=30)
    return fig


def layers_figure(results: list[Result], kind: str = "unbiased"):
    """One layer × layer heatmap per model (its `cka:<itself>` cell)."""
    usable = [r for r in results if f"cka:{r.model['name']}" in r.cells]
    fig, axes = new_panels(1, max(len(usable), 1), 3.6 * max(len(usable), 1), 3.2)
    for ax, r in zip(axes[0], usable):
        cell = r.cells[f"cka:{r.model['name']}"]
        heatmap(ax, cell[kind], cell["layers"], cell["other_layers"], vmin=0.0, vmax=1.0, fmt="{:.2f}",
                colorbar=None)
        ax.set_title(f"{r.model['name']}: layer × layer")
    return fig


def rank_figure(results: list[Result], colors: dict, baseline: str | None = None):
    fig, axes = new_panels(1, 1, 5.0, 3.4)
    values = {r.model["name"]: [r.cells["rank"]["rankme_global"], r.cells["rank"]["rankme_local"]] for r in results}
    grouped_bars(axes[0][0], values, ["global features", "local vectors"], colors, baseline=baseline)
    axes[0][0].set_ylabel("RankMe effective rank")
    return fig
