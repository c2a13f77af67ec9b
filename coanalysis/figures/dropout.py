"""Internal corruption of the local map (PROTOCOLS.md section 5): accuracy against the fraction
dropped (or the feature-noise level), mean over masks with a ±1 std band."""

from __future__ import annotations

from coanalysis.figures.style import new_figure
from coanalysis.results import Result

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


def dropout_figure(results: list[Result], colors: dict, kind: str):
    fig, ax = new_figure()
    for result in results:
        name = result.model["name"]
        xs, ys, sd = dropout_curve(result, kind)
        if not xs:
            continue
        ax.plot(xs, ys, marker="o", color=colors[name], label=name)
        ax.fill_between(xs, [y - s for y, s in zip(ys, sd)], [y + s for y, s in zip(ys, sd)], color=colors[name],
                        alpha=0.2, linewidth=0)
    first = results[0]
    masks = first.protocol.get("masks")
    ax.set_xlabel(KINDS[kind])
    ax.set_ylabel("probe top-1 accuracy (%)")
    ax.set_title(f"{kind} (n = {first.protocol['data']['n']}, {masks} masks, mean ± std)")
    ax.legend(frameon=False)
    return fig
