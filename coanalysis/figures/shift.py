"""Distribution-shift figures: accuracy per set (3DCC averaged over its cells) and 3DCC accuracy
against severity (averaged over its corruptions)."""

from __future__ import annotations

from coanalysis.figures.style import Series, draw_series, grouped_bars, new_panels
from coanalysis.results.store import Result

SETS_3DCC = "imagenet-3dcc"


def set_accuracies(result: Result) -> dict[str, float]:
    """{set: accuracy in %}; 3DCC is the mean over its stored (corruption, severity) cells."""
    out: dict[str, list[float]] = {}
    for cell in result.cells.values():
        if cell.get("accuracy") is not None:
            out.setdefault(cell["set"], []).append(100 * cell["accuracy"])
    return {k: sum(v) / len(v) for k, v in out.items()}


def severity_curve(result: Result) -> tuple[list[int], list[float]]:
    by: dict[int, list[float]] = {}
    for cell in result.cells.values():
        if cell.get("set") == SETS_3DCC and cell.get("accuracy") is not None:
            by.setdefault(cell["severity"], []).append(100 * cell["accuracy"])
    xs = sorted(by)
    return xs, [sum(by[x]) / len(by[x]) for x in xs]


def sets_figure(results: list[Result], colors: dict, baseline: str | None = None):
    sets = list(dict.fromkeys(s for r in results for s in set_accuracies(r)))
    fig, axes = new_panels(1, 1, 1.5 + 1.2 * len(sets), 3.4)
    values = {r.model["name"]: [set_accuracies(r).get(s, float("nan")) for s in sets] for r in results}
    grouped_bars(axes[0][0], values, sets, colors, baseline=baseline)
    axes[0][0].set_ylabel("probe top-1 accuracy (%)")
    return fig


def severity_figure(results: list[Result], colors: dict, groups: dict | None = None):
    """3DCC accuracy against severity; a seed group draws its mean ± sd over seeds."""
    fig, axes = new_panels(1, 1, 5.0, 3.4)
    ax = axes[0][0]
    draw_series(ax, {r.model["name"]: Series(*map(tuple, severity_curve(r))) for r in results}, colors, groups)
    ax.set_xlabel("ImageNet-3DCC severity")
    ax.set_ylabel("top-1 accuracy (%), mean over corruptions")
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.legend(frameon=False)
    return fig
