"""Accuracy under Gaussian noise, one curve per model (PROTOCOLS.md section 3)."""

from __future__ import annotations

from coanalysis.figures.style import interval_band, new_figure
from coanalysis.results import Result


def noise_curve(result: Result) -> tuple[list[float], list[float]]:
    """(sigmas, accuracies in %) of one noise result, in sigma order."""
    points = sorted((c["sigma"], 100 * c["accuracy"]) for c in result.cells.values())
    return [p[0] for p in points], [p[1] for p in points]


def noise_figure(results: list[Result], colors: dict):
    fig, ax = new_figure()
    for result in results:
        name = result.model["name"]
        sigmas, acc = noise_curve(result)
        interval_band(ax, [(c["sigma"], c) for c in result.cells.values()], color=colors[name])
        ax.plot(sigmas, acc, marker="o", color=colors[name], label=name)
    n = results[0].protocol["data"]["n"] if results else 0
    ax.set_xlabel("noise σ (pixel units, images in [0, 1])")
    ax.set_ylabel("probe top-1 accuracy (%)")
    ax.set_title(f"Gaussian noise (n = {n}, seed {results[0].protocol['seed'] if results else 0})")
    ax.legend(frameon=False)
    return fig
