"""Accuracy under Gaussian noise, one curve per model (PROTOCOLS.md section 3)."""

from __future__ import annotations

from coanalysis.figures.style import Series, band_of, draw_series, new_figure
from coanalysis.results.store import Result


def noise_curve(result: Result) -> tuple[list[float], list[float]]:
    """(sigmas, accuracies in %) of one noise result, in sigma order."""
    points = sorted((c["sigma"], 100 * c["accuracy"]) for c in result.cells.values())
    return [p[0] for p in points], [p[1] for p in points]


def noise_series(result: Result) -> Series:
    sigmas, acc = noise_curve(result)
    return Series(tuple(sigmas), tuple(acc), band_of([(c["sigma"], c) for c in result.cells.values()]))


def noise_figure(results: list[Result], colors: dict, groups: dict | None = None):
    """Accuracy against sigma: a model's band is its image-bootstrap 95% interval; a seed group
    draws its mean over seeds with ±1 sd (`style.draw_series`)."""
    fig, ax = new_figure()
    draw_series(ax, {r.model["name"]: noise_series(r) for r in results}, colors, groups)
    n = results[0].protocol["data"]["n"] if results else 0
    ax.set_xlabel("noise σ (pixel units, images in [0, 1])")
    ax.set_ylabel("probe top-1 accuracy (%)")
    ax.set_title(f"Gaussian noise (n = {n}, seed {results[0].protocol['seed'] if results else 0})")
    ax.legend(frameon=False)
    return fig
