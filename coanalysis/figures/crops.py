"""Crop-scale accuracy (PROTOCOLS.md section 7): accuracy against the crop's area fraction."""

from __future__ import annotations

from coanalysis.figures.style import Series, band_of, draw_series, new_figure
from coanalysis.results.store import Result


def crop_curve(result: Result) -> tuple[list[float], list[float]]:
    """(area fractions s, accuracies in %), in s order."""
    points = sorted((c["scale"], 100 * c["accuracy"]) for c in result.cells.values())
    return [p[0] for p in points], [p[1] for p in points]


def crops_figure(results: list[Result], colors: dict, groups: dict | None = None):
    """Accuracy against crop area, bands as in `noise_figure` (interval, or seeds' ±1 sd)."""
    fig, ax = new_figure()
    series = {}
    for result in results:
        xs, ys = crop_curve(result)
        series[result.model["name"]] = Series(tuple(xs), tuple(ys),
                                              band_of([(c["scale"], c) for c in result.cells.values()]))
    draw_series(ax, series, colors, groups)
    scales = {x for s in series.values() for x in s.x}
    ax.set_xscale("log")
    ax.set_xticks(sorted(scales), labels=[f"{s:g}" for s in sorted(scales)])
    ax.minorticks_off()
    ax.set_xlabel("crop area s (fraction of the image, log scale)")
    ax.set_ylabel("probe top-1 accuracy (%)")
    ax.set_title(f"Random crops resized to the input (n = {results[0].protocol['data']['n']}, "
                 f"seed {results[0].protocol['seed']})")
    ax.legend(frameon=False)
    return fig
