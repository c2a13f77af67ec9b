"""BagSSL figure (PROTOCOLS.md section 10): whole-vs-parts similarity and bag-of-patches
accuracy against patch size, one colour per model."""

from __future__ import annotations

import numpy as np

from coanalysis.figures.style import Series, draw_series, new_panels
from coanalysis.results.store import Result


def curve(result: Result, field: str, stat: str | None = None) -> tuple[list[int], list[float]]:
    """(patch sizes, values) of one BagSSL result in size order; `stat` picks a summary entry."""
    points = []
    for cell in result.cells.values():
        value = cell.get(field)
        if stat is not None and isinstance(value, dict):
            value = value.get(stat)
        points.append((cell["patch_size"], np.nan if value is None else value))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


def describe(result: Result) -> str:
    p = result.protocol
    first = next(iter(result.cells.values()), {})
    how = "grid" if p.get("sampling") == "grid" else f"{p.get('patches_per_image')} random patches"
    return f"n = {first.get('n', '?')} images, {how}, patches {p.get('feed')}d to the encoder, seed {p.get('seed')}"


def bagssl_figure(results: list[Result], colors: dict, groups: dict | None = None):
    """Left: cos(whole, mean of parts) (solid, band: std over images, or ±1 sd over a seed group's
    seeds) and mean cos(whole, one part) (dotted); right: probe accuracy on the bag average (solid,
    a seed group's mean ± sd over seeds), on single patches (dotted) and on the whole image (dashed)."""
    fig, axes = new_panels(1, 2, 8.0, 3.3)
    ax_cos, ax_acc = axes[0]
    parts, bags = {}, {}
    for r in results:
        sizes, mean = curve(r, "cos_whole_bag", "mean")
        _, std = curve(r, "cos_whole_bag", "std")
        parts[r.model["name"]] = Series(tuple(sizes), tuple(mean), tuple((m - s, m + s) for m, s in zip(mean, std)))
        bags[r.model["name"]] = Series(tuple(sizes), tuple(100 * float(v) for v in curve(r, "bag_accuracy")[1]))
    draw_series(ax_cos, parts, colors, groups, label="{}: mean of parts")
    draw_series(ax_acc, bags, colors, groups, label="{}: bag of patches")
    for r in results:
        name, color = r.model["name"], colors[r.model["name"]]
        sizes, single = curve(r, "cos_whole_patch", "mean")
        ax_cos.plot(sizes, single, marker=".", ls=":", color=color, label=f"{name}: one part")
        _, patch = curve(r, "patch_accuracy")
        _, whole = curve(r, "global_accuracy")
        ax_acc.plot(sizes, 100 * np.asarray(patch), marker=".", ls=":", color=color, label=f"{name}: one patch")
        if whole and np.isfinite(whole[0]):
            ax_acc.axhline(100 * whole[0], color=color, ls="--", lw=1, label=f"{name}: whole image")
    ax_cos.set_xlabel("patch size (px)")
    ax_cos.set_ylabel("cosine to the whole-image representation")
    ax_cos.set_title("Whole ≈ mean of parts? (band: std over images)", fontsize=9)
    ax_cos.legend(frameon=False, fontsize=7)
    ax_acc.set_xlabel("patch size (px)")
    ax_acc.set_ylabel("probe top-1 accuracy (%)")
    ax_acc.set_title("Bag-of-patches readout (probe unchanged)", fontsize=9)
    ax_acc.legend(frameon=False, fontsize=7)
    for ax in (ax_cos, ax_acc):
        sizes = sorted({s for r in results for s in curve(r, "cos_whole_bag", "mean")[0]})
        if sizes:
            ax.set_xticks(sizes)
    if results:
        fig.suptitle(f"BagSSL analysis ({describe(results[0])})", fontsize=9)
    return fig
