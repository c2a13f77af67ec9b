"""Internal corruption of the local map (PROTOCOLS.md section 5): accuracy against the fraction
dropped (or the feature-noise level), mean over masks with a ±1 std band."""

from __future__ import annotations

from coanalysis.figures.style import Series, draw_series, new_figure
from coanalysis.results.store import Result

KINDS = {"spatial": "fraction p of local positions dropped", "channel": "fraction p of channels zeroed (rescaled)",
         "noise": "feature noise α (× per-channel std of clean maps)"}


def dropout_curve(result: Result, kind: str) -> tuple[list[float], list[float], list[float]]:
    """(x, mean accuracy %, std %) of one kind, in x order; spatial `1-1/hw` sits at its value."""
    points = []
    for cell in result.cells.values():
        if cell.get("kind") != kind:
            continue
        x = cell.get("p_value", cell.get("p", cell.get("alpha")))
        points.append((float(x), 100 * cell["mean"], 100 * cell["std"]))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]


def dropout_series(result: Result, kind: str) -> Series:
    """A model's mean over masks, its band ±1 std over masks."""
    xs, ys, sd = dropout_curve(result, kind)
    return Series(tuple(xs), tuple(ys), tuple((y - s, y + s) for y, s in zip(ys, sd)))


def dropout_figure(results: list[Result], colors: dict, kind: str, groups: dict | None = None):
    """A model: mean over masks ± std over masks; a seed group: the mean over seeds of the
    seeds' mask means, ± sd over seeds."""
    fig, ax = new_figure()
    draw_series(ax, {r.model["name"]: dropout_series(r, kind) for r in results}, colors, groups)
    first = results[0]
    masks = first.protocol.get("masks")
    ax.set_xlabel(KINDS[kind])
    ax.set_ylabel("probe top-1 accuracy (%)")
    ax.set_title(f"{kind} (n = {first.protocol['data']['n']}, {masks} masks, mean ± std)")
    ax.legend(frameon=False)
    return fig
