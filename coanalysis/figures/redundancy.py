"""Redundancy figures (PROTOCOLS.md section 8): the local–global scatter (the CO-SSL paper's
Fig. 3B), one panel per model, and bars of the similarity measures and single-vector accuracies."""

from __future__ import annotations

import numpy as np
import seaborn as sns

from coanalysis.figures.style import fmt_n, new_panels
from coanalysis.results.store import Result


def describe(result: Result) -> str:
    """'n = N images, P pairs, <positions> positions, seed s' of one redundancy result."""
    p = result.protocol
    pairs = result.cells.get("pairs", {})
    n = pairs.get("n_images") or result.cells.get("similarity", {}).get("n_images") or p.get("n_images")
    n_pairs = pairs.get("n_pairs", p.get("n_pairs"))
    return (f"n = {fmt_n(n)} images, {fmt_n(n_pairs)} pairs, {p.get('positions')} positions "
            f"× {p.get('samples_per_pair')}, seed {p.get('seed')}")


def scatter_figure(results: list[Result], colors: dict):
    """Hexbin of (g_ij, l_ij) per model with Pearson r and its bootstrap 95% CI in the legend."""
    usable = [r for r in results if r.cells.get("pairs", {}).get("points")]
    fig, axes = new_panels(1, max(len(usable), 1), 3.3 * max(len(usable), 1) + 0.4, 3.4, sharex=True, sharey=True)
    lo, hi = 1.0, -1.0
    for r in usable:
        pts = r.cells["pairs"]["points"]
        lo = min(lo, min(pts["g"]), min(pts["l"]))
        hi = max(hi, max(pts["g"]), max(pts["l"]))
    pad = 0.03 * max(hi - lo, 1e-3)
    for ax, r in zip(axes[0], usable):
        name, cell = r.model["name"], r.cells["pairs"]
        g, l = np.asarray(cell["points"]["g"]), np.asarray(cell["points"]["l"])
        cmap = sns.light_palette(colors[name], as_cmap=True)
        ax.hexbin(g, l, gridsize=40, cmap=cmap, mincnt=1, extent=(lo - pad, hi + pad, lo - pad, hi + pad),
                  linewidths=0)
        r_val, ci = cell.get("pearson_r"), cell.get("ci95")
        label = "r undefined" if r_val is None else \
            f"r = {r_val:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        if cell.get("r_null") is not None:  # chance level (PROTOCOLS 12): same N, P and map size
            label += f"\nchance r_null = {cell['r_null']:.3f}"
        if r_val is not None and len(g) > 1:
            slope, intercept = np.polyfit(g, l, 1)
            xs = np.array([g.min(), g.max()])
            ax.plot(xs, slope * xs + intercept, color=colors[name], lw=1.5, label=label)
        else:
            ax.plot([], [], color=colors[name], label=label)
        ax.legend(loc="upper left", frameon=True, fontsize=8, title="Pearson r, 95% CI; chance level", title_fontsize=8)
        ax.set_title(f"{name} ({cell.get('layer')}, {cell['map_size'][0]}×{cell['map_size'][1]} map)", fontsize=9,
                     color=colors[name])
        ax.set_xlabel("global similarity $g_{ij}$")
        ax.text(0.98, 0.02, f"{describe(r)}\n{len(g)} pairs shown", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=6.5, color="0.3")
    axes[0][0].set_ylabel("local similarity $l_{ij}$")
    if not usable:
        axes[0][0].text(0.5, 0.5, "no pair results", ha="center", va="center")
    fig.suptitle("Local vs global similarity of image pairs", fontsize=10)
    return fig


MEASURES = (("intra_image", "intra-image\nlocal similarity"), ("local_to_global", "local-to-own-global\nsimilarity"))
PARTS = (("global", "global $G_i$"), ("part=centre", "centre vector"), ("part=random", "random vector"))


def bars_figure(results: list[Result], colors: dict):
    """Left: similarity measures (mean ± std over images); right: probe accuracy of G and of one local vector."""
    fig, axes = new_panels(1, 2, 8.0, 3.3)
    ax_sim, ax_acc = axes[0]
    width = 0.8 / max(len(results), 1)
    for k, r in enumerate(results):
        name = r.model["name"]
        sim = r.cells.get("similarity", {})
        means = [(sim.get(key) or {}).get("mean", np.nan) for key, _ in MEASURES]
        stds = [(sim.get(key) or {}).get("std", 0.0) for key, _ in MEASURES]
        xs = np.arange(len(MEASURES)) + (k - (len(results) - 1) / 2) * width
        ax_sim.bar(xs, means, width, yerr=stds, color=colors[name], label=name, capsize=3,
                   error_kw={"elinewidth": 1})
        centre, random = r.cells.get("part=centre", {}), r.cells.get("part=random", {})
        accs = [centre.get("global_accuracy"), centre.get("accuracy"), random.get("accuracy")]
        errs = [np.nan, np.nan, random.get("std") or 0.0]  # only the random draws have a spread
        ax_acc.bar(np.arange(len(PARTS)) + (k - (len(results) - 1) / 2) * width,
                   [100 * a if a is not None else np.nan for a in accs], width, yerr=[100 * e for e in errs],
                   color=colors[name], label=name, capsize=3, error_kw={"elinewidth": 1})
    ax_sim.set_xticks(range(len(MEASURES)), [label for _, label in MEASURES])
    ax_sim.set_ylabel("mean cosine similarity")
    ax_sim.set_title("Similarity (error bars: std over images)", fontsize=9)
    ax_sim.legend(frameon=False, fontsize=8)
    ax_acc.set_xticks(range(len(PARTS)), [label for _, label in PARTS])
    ax_acc.set_ylabel("probe top-1 accuracy (%)")
    ax_acc.set_title("One part for the whole (error bar: std over draws)", fontsize=9)
    if results:
        fig.suptitle(f"Redundancy of local representations ({describe(results[0])})", fontsize=9)
    return fig


def above_chance_figure(results: list[Result], colors: dict, groups: dict[str, list[str]]):
    """Pearson r (bars) beside its chance level r_null (black ticks) per seed group: a group of two
    or more seeds draws its mean r with ±1 sd over seeds, a lone checkpoint its bootstrap 95% CI.
    The map size is in each label: r and r_null are comparable only at the same size."""
    by_name = {r.model["name"]: r.cells.get("pairs", {}) for r in results}
    rows = []
    for group, members in groups.items():
        cells = [by_name[m] for m in members if by_name.get(m, {}).get("pearson_r") is not None]
        if not cells:
            continue
        rs = [c["pearson_r"] for c in cells]
        nulls = [c["r_null"] for c in cells if c.get("r_null") is not None]
        mean = float(np.mean(rs))
        if len(cells) > 1:
            err = (float(np.std(rs, ddof=1)),) * 2
            label = f"{group}\n{len(cells)} seeds, mean ± sd"
        else:
            ci = cells[0].get("ci95")
            err = (mean - ci[0], ci[1] - mean) if ci else (0.0, 0.0)
            label = f"{group}\none seed, 95% CI"
        size = cells[0].get("map_size") or ("?", "?")
        rows.append((f"{label}\n{size[0]}×{size[1]} map", mean, err, float(np.mean(nulls)) if nulls else None,
                     colors[next(m for m in members if by_name.get(m, {}).get("pearson_r") is not None)]))
    fig, axes = new_panels(1, 1, 1.6 + 1.5 * max(len(rows), 1), 3.4)
    ax = axes[0][0]
    for i, (label, mean, err, null, color) in enumerate(rows):
        ax.bar(i, mean, 0.6, yerr=[[err[0]], [err[1]]], color=color, capsize=4, error_kw={"elinewidth": 1})
        if null is not None:
            ax.plot([i - 0.35, i + 0.35], [null, null], color="black", lw=2,
                    label="chance level r_null" if i == 0 else None)
    ax.set_xticks(range(len(rows)), [row[0] for row in rows], fontsize=7)
    ax.set_ylabel("Pearson r of (g_ij, l_ij)")
    ax.set_title("Redundancy above chance, per seed group", fontsize=9)
    if any(row[3] is not None for row in rows):
        ax.legend(frameon=False, fontsize=7)
    return fig
