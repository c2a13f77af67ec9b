"""Common corruptions (PROTOCOLS.md section 4): a corruption x severity heatmap of one model."""

from __future__ import annotations

import math

from coanalysis.results.derived.corruptions import mean_standard_accuracy, parse_key
from coanalysis.figures.style import new_figure
from coanalysis.results.store import Result


def accuracy_grid(result: Result) -> tuple[list[str], list[int], list[list[float]]]:
    """(corruptions, severities, accuracies in % per [corruption][severity], NaN where missing),
    in the protocol's order."""
    corruptions = list(result.protocol["corruptions"])
    severities = sorted(result.protocol["severities"])
    grid = [[math.nan] * len(severities) for _ in corruptions]
    for key, cell in result.cells.items():
        if key == "clean" or cell.get("accuracy") is None:
            continue
        c, s = parse_key(key)
        if c in corruptions and s in severities:
            grid[corruptions.index(c)][severities.index(s)] = 100 * cell["accuracy"]
    return corruptions, severities, grid


def corruption_heatmap(result: Result, mce: float | None = None, reference: str | None = None,
                       color_max: float = 100.0):
    """Accuracy (%) per corruption (rows) and severity (columns), annotated; missing cells blank.
    The title gives clean and mean accuracy, and the mCE against `reference` when given."""
    corruptions, severities, grid = accuracy_grid(result)
    fig, ax = new_figure(4.2 + 0.35 * len(severities), 1.0 + 0.28 * len(corruptions))
    image = ax.imshow(grid, vmin=0, vmax=color_max, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(severities)), labels=[str(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), labels=[c.replace("_", " ") for c in corruptions])
    ax.grid(False)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v < color_max / 2 else "black")
    fig.colorbar(image, ax=ax, label="probe top-1 accuracy (%)", shrink=0.9)
    mean, count = mean_standard_accuracy(result.cells)
    clean = result.cells.get("clean", {}).get("accuracy")
    title = result.model["name"]
    if clean is not None:
        title += f": clean {100 * clean:.1f}%"
    if mean is not None:
        title += f", mean {100 * mean:.1f}% ({count} cells)"
    if mce is not None and reference is not None:
        title += f"\nmCE {100 * mce:.1f}% relative to {reference}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("severity")
    return fig
