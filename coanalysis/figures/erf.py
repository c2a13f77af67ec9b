"""Effective-receptive-field figures (PROTOCOLS.md section 9), from stored ERF results alone.

- `erf_grid_figure`: the CO-SSL paper's Fig. 4 layout: rows are models, columns are coordinates,
  each panel the ERF of one image drawn over that image with the unit's centre marked and its
  90%-mass square outlined;
- `erf_average_figure`: the ERF averaged over N images, with the contours holding 50% and 90% of
  its mass;
- `erf_size_figure`: ERF sizes (50% and 90% mass squares, mean ± std over images) against the
  analytic receptive field.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.patches import Rectangle

from coanalysis.results.derived.erf import decode_image, decode_map
from coanalysis.figures.style import new_panels
from coanalysis.results.store import Result

METHOD_LABELS = {"gradient": "plain gradient", "integrated-gradients": "Integrated Gradients",
                 "smoothgrad": "SmoothGrad"}


def method_cells(result: Result, method: str) -> list[dict]:
    """The cells of `method`, in the protocol's coordinate order."""
    return [c for c in result.cells.values() if c.get("method") == method]


def _coords(results: list[Result], method: str) -> list[tuple[float, float]]:
    seen: dict[tuple[float, float], None] = {}
    for r in results:
        for c in method_cells(r, method):
            seen.setdefault(tuple(c["coord"]), None)
    return list(seen)


def _cell(result: Result, method: str, coord: tuple[float, float]) -> dict | None:
    return next((c for c in method_cells(result, method) if tuple(c["coord"]) == coord), None)


def _stored(cell: dict, value: float) -> float:
    """An input-pixel coordinate in the stored (downsampled) map's pixels."""
    f = cell.get("store_factor", 1)
    return (value + 0.5) / f - 0.5


def _mark(ax, cell: dict, color, shape: tuple[int, int], side: float | None = None) -> None:
    """Mark the unit's centre (and the square of `side` input px around it) on a map of `shape`."""
    cy, cx = (_stored(cell, v) for v in cell["centre"])
    ax.plot(cx, cy, marker="o", ms=5, mfc=color, mec="white", mew=1.2, zorder=5)
    if side:
        half = side / cell.get("store_factor", 1) / 2
        ax.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, ec="white", lw=1.0,
                               ls="--", zorder=4))
    ax.set_xlim(-0.5, shape[1] - 0.5)  # the marks never widen the panel beyond the image
    ax.set_ylim(shape[0] - 0.5, -0.5)


def _overlay(image: np.ndarray, erf: np.ndarray) -> np.ndarray:
    """The image, dimmed, with the ERF map blended on top (opacity grows with the map's value)."""
    top = np.quantile(erf, 0.995) or erf.max() or 1.0
    m = np.clip(erf / top, 0, 1)
    heat = matplotlib.colormaps["inferno"](m)[..., :3]
    alpha = (0.85 * np.sqrt(m))[..., None]
    base = 0.25 + 0.5 * (image.astype(np.float32) / 255)
    return np.clip((1 - alpha) * base + alpha * heat, 0, 1)


def _row_label(ax, text: str, color) -> None:
    ax.text(-0.08, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=9,
            color=color, fontweight="bold")



def _bare(ax):
    """An image panel: no ticks, no grid."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax

def _footer(results: list[Result], method: str, what: str) -> str:
    r = results[0]
    cells = method_cells(r, method)
    n = cells[0]["n_images"] if cells else 0
    seed = f", SmoothGrad seed {r.protocol.get('seed')}" if method == "smoothgrad" else ""
    return f"{METHOD_LABELS.get(method, method)}; {what}; n = {n} images{seed}"


def erf_grid_figure(results: list[Result], colors: dict, method: str = "gradient", example: int = 0):
    """Rows = models, columns = coordinates: the ERF of example image `example` over the image."""
    results = [r for r in results if method_cells(r, method)]
    coords = _coords(results, method)
    rows, cols = max(len(results), 1), max(len(coords), 1)
    fig, axes = new_panels(rows, cols, 1.9 * cols + 0.5, 1.9 * rows + 0.6)
    name = "?"
    for i, r in enumerate(results):
        for j, coord in enumerate(coords):
            ax = _bare(axes[i][j])
            cell = _cell(r, method, coord)
            if cell is None or len(cell.get("examples", [])) <= example:
                ax.text(0.5, 0.5, "not computed", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            ex = cell["examples"][example]
            name = ex["name"]
            erf = decode_map(ex["map"])
            ax.imshow(_overlay(decode_image(ex["image"]), erf), interpolation="nearest")
            _mark(ax, cell, colors[r.model["name"]], erf.shape, ex["sizes"].get("90"))
            if i == 0:
                ax.set_title(f"(u, v) = ({coord[0]:g}, {coord[1]:g})", fontsize=9)
        _row_label(axes[i][0], r.model["name"], colors[r.model["name"]])
    fig.suptitle(f"Effective receptive fields on {name.split('/')[-1]}", fontsize=10)
    fig.supxlabel(_footer(results, method, f"image {example + 1} of the set; dot: unit centre, dashed: its "
                                            "90%-mass square") if results else "",
                  fontsize=7, color="0.3")
    return fig


def erf_average_figure(results: list[Result], colors: dict, method: str = "gradient"):
    """Rows = models, columns = coordinates: the average ERF with its 50% and 90% mass contours."""
    results = [r for r in results if method_cells(r, method)]
    coords = _coords(results, method)
    rows, cols = max(len(results), 1), max(len(coords), 1)
    fig, axes = new_panels(rows, cols, 1.9 * cols + 0.5, 1.9 * rows + 0.6)
    for i, r in enumerate(results):
        for j, coord in enumerate(coords):
            ax = _bare(axes[i][j])
            cell = _cell(r, method, coord)
            if cell is None:
                continue
            m = decode_map(cell["mean_map"])
            ax.imshow(m, cmap="magma", interpolation="nearest")
            levels = cell.get("mean_map_levels", {})
            scale = cell["mean_map"].get("scale") or 1.0
            lv = [levels[k] / scale for k in ("90", "50") if k in levels]
            if len(lv) == 2 and lv[0] < lv[1] and m.max() > 0:
                ax.contour(m, levels=lv, colors=["white", "cyan"], linewidths=[0.8, 1.0], linestyles=["--", "-"])
            _mark(ax, cell, colors[r.model["name"]], m.shape)
            sizes = cell.get("mean_map_sizes", {})
            rf = cell.get("analytic_rf")
            ax.text(0.02, 0.02, f"50%: {sizes.get('50', float('nan')):.0f} px\n90%: {sizes.get('90', float('nan')):.0f}"
                                f" px\nRF: {rf if rf is not None else '?'}", transform=ax.transAxes, fontsize=6.5,
                    color="white", va="bottom", bbox={"facecolor": "black", "alpha": 0.45, "lw": 0, "pad": 1.5})
            if i == 0:
                ax.set_title(f"(u, v) = ({coord[0]:g}, {coord[1]:g})", fontsize=9)
        _row_label(axes[i][0], r.model["name"], colors[r.model["name"]])
    fig.suptitle("Average effective receptive field (solid: 50% of the mass, dashed: 90%)", fontsize=10)
    fig.supxlabel(_footer(results, method, "each image's map normalized to unit mass") if results else "",
                  fontsize=7, color="0.3")
    return fig


def erf_size_figure(results: list[Result], colors: dict, method: str = "gradient"):
    """Grouped bars: the 50% (solid) and 90% (light) mass-square sides per coordinate and model,
    mean ± std over images, with the analytic receptive field of each model as a dashed line."""
    results = [r for r in results if method_cells(r, method)]
    coords = _coords(results, method)
    fig, axes = new_panels(1, 1, max(4.5, 1.3 * len(coords) + 2), 3.3)
    ax = axes[0][0]
    width = 0.8 / max(len(results), 1)
    for k, r in enumerate(results):
        color = colors[r.model["name"]]
        xs = np.arange(len(coords)) + (k - (len(results) - 1) / 2) * width
        for q, alpha, label in (("90", 0.35, "90%"), ("50", 1.0, "50%")):
            vals, errs = [], []
            for coord in coords:
                s = (_cell(r, method, coord) or {}).get("sizes", {}).get(q) or {}
                vals.append(s.get("mean") if s.get("mean") is not None else np.nan)
                errs.append(s.get("std") or 0.0)
            ax.bar(xs, vals, width, yerr=errs, color=color, alpha=alpha, capsize=2, error_kw={"elinewidth": 0.8},
                   label=f"{r.model['name']} ({label})")
        cell = method_cells(r, method)[0]
        if cell.get("analytic_rf") is not None:
            ax.axhline(cell["analytic_rf"], color=color, ls="--", lw=1)
            ax.text(len(coords) - 0.5, cell["analytic_rf"], f" RF {cell['analytic_rf']}", color=color, fontsize=7,
                    va="bottom", ha="right")
    ax.set_xticks(range(len(coords)), [f"({u:g}, {v:g})" for u, v in coords])
    ax.set_xlabel("unit coordinate (u, v)")
    ax.set_ylabel("side of the centred square (px)")
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(_footer(results, method, "mean ± std over images") if results else "ERF size", fontsize=8)
    return fig
