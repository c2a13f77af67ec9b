"""The style kit every figure shares (matplotlib with the Agg backend, seaborn):
- `model_colors(names)`: one colour-blind-safe colour per model, fixed by the sorted names, so
  a model keeps its colour whatever the baseline or the order of the folders;
- `AXES` and `label_axes(ax, x, y)`: axis labels that carry their units (sigma in pixel units,
  epsilon in /255, ...);
- `Curve`, `curve_from_cells(cells, x, y)` and `plot_curve`: a mean per condition with its
  spread (std over seeds or masks) drawn as a band and error bars wherever there is one;
- `band_of(points)`: the cells' 95% bootstrap intervals as a `Series` band;
- `Series` and `draw_series(ax, series, colors, groups)`: one curve per model, or, for a seed
  group (checkpoints differing only in seed), its seeds as thin lines and the mean over seeds
  with a ±1 sd band and error bars;
- `heatmap` and `grouped_bars` for condition grids and per-model bars;
- `legend(ax, baseline)` marks the model differences are taken against;
- `new_figure`, `render_figure` / `figure_bytes` to make and encode figures (PNG, PDF).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

RGB = tuple[float, float, float]

# Axis labels with their units; `label_axes` takes these keys or literal text.
AXES: dict[str, str] = {
    "accuracy": "probe top-1 accuracy (%)",
    "accuracy_drop": "accuracy lost against clean (points)",
    "sigma": "noise σ (pixel units, images in [0, 1])",
    "eps_linf": "ε, L∞ (in /255 of the pixel range)",
    "eps_l2": "ε, L2 (pixel units, images in [0, 1])",
    "severity": "corruption severity (1–5)",
    "drop_fraction": "fraction p of local positions dropped",
    "channel_fraction": "fraction p of channels zeroed",
    "feature_noise": "feature noise α (× per-channel std of clean maps)",
    "crop_area": "crop area s (fraction of the image)",
    "patch_size": "patch size (px)",
    "cosine": "cosine similarity",
    "global_cosine": "cos(G_i, G_j), global",
    "local_cosine": "mean cos(L_i, L_j), local",
    "erf_side": "ERF side (px)",
    "mass": "gradient mass held (%)",
}


def model_colors(names: Iterable[str]) -> dict[str, RGB]:
    """One colour per model. Colours follow the sorted names (seaborn's colour-blind palette,
    10 colours; a husl palette beyond that), so a model keeps its colour across figures, across
    `--baseline` choices and across reports of the same set of models."""
    order = sorted(set(names))
    palette = sns.color_palette("colorblind", 10) if len(order) <= 10 else sns.color_palette("husl", len(order))
    return {name: tuple(palette[i]) for i, name in enumerate(order)}


def hex_color(rgb: RGB) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def new_figure(width: float = 5.0, height: float = 3.4, nrows: int = 1, ncols: int = 1, **kwargs: Any):
    """`(fig, ax)` (or `(fig, axes)` for a grid) in the report's style."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    return plt.subplots(nrows, ncols, figsize=(width, height), dpi=150, constrained_layout=True, **kwargs)


def label_axes(ax, x: str | None = None, y: str | None = "accuracy", title: str | None = None) -> None:
    """Set axis labels from `AXES` keys (or literal text when not a key)."""
    if x is not None:
        ax.set_xlabel(AXES.get(x, x))
    if y is not None:
        ax.set_ylabel(AXES.get(y, y))
    if title is not None:
        ax.set_title(title)


def fmt_n(n: int | None) -> str:
    """A count with thin-space thousands: 10000 -> '10 000'."""
    return "?" if n is None else f"{int(n):,}".replace(",", "\u202f")


def per_255(eps: float) -> float:
    """An L∞ epsilon in pixel units ([0, 1] images) expressed in /255."""
    return eps * 255


def legend(ax, baseline: str | None = None, **kwargs: Any) -> None:
    """A frameless legend; the baseline's entry reads 'NAME (baseline)'."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    labels = [f"{label} (baseline)" if baseline is not None and label == baseline else label for label in labels]
    ax.legend(handles, labels, frameon=False, **kwargs)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std of no values")
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class Curve:
    """Mean `y` per condition `x`, in `x` order, with its spread where there is one.

    `std[i]` is the sample std over the `repeats[i]` seeds or masks at `x[i]`; `std` is None when
    every condition was measured once.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    std: tuple[float, ...] | None = None
    repeats: tuple[int, ...] | None = None

    def at(self, x: float) -> tuple[float, float]:
        """(mean, std) at condition `x` (std 0 without spread)."""
        i = self.x.index(x)
        return self.y[i], self.std[i] if self.std is not None else 0.0


def curve_from_cells(cells: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]], x: str,
                     y: str = "accuracy", *, std: str | None = None, scale: float = 100.0) -> Curve:
    """A `Curve` from result cells: the mean of `cell[y]` per distinct `cell[x]`, times `scale`.

    Repeats (seeds, masks) are either several cells sharing one `x` or a list in `cell[y]`; their
    sample std is the spread. When `std` names a field, cells carry their own spread instead
    (one cell per `x`). Accuracies are stored as fractions, hence the default `scale` of 100.
    """
    rows = cells.values() if isinstance(cells, Mapping) else cells
    groups: dict[float, list[float]] = {}
    own_std: dict[float, float] = {}
    for cell in rows:
        value = cell[y]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        groups.setdefault(cell[x], []).extend(scale * v for v in values)
        if std is not None:
            own_std[cell[x]] = scale * cell[std]
    xs = tuple(sorted(groups))
    means, stds = zip(*(mean_std(groups[k]) for k in xs)) if xs else ((), ())
    repeats = tuple(len(groups[k]) for k in xs)
    if std is not None:
        return Curve(xs, tuple(means), tuple(own_std[k] for k in xs), None)
    has_spread = any(r > 1 for r in repeats)
    return Curve(xs, tuple(means), tuple(stds) if has_spread else None, repeats if has_spread else None)


def plot_curve(ax, curve: Curve, *, color: RGB, label: str, marker: str = "o", x_scale: float = 1.0,
               **kwargs: Any) -> None:
    """Line with markers; where `curve` has a spread, a ±1 std band and error bars."""
    xs = [x_scale * v for v in curve.x]
    ax.plot(xs, curve.y, marker=marker, color=color, label=label, **kwargs)
    if curve.std is not None:
        lo = [m - s for m, s in zip(curve.y, curve.std)]
        hi = [m + s for m, s in zip(curve.y, curve.std)]
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax.errorbar(xs, curve.y, yerr=curve.std, fmt="none", ecolor=color, capsize=3, linewidth=1)


@dataclass(frozen=True)
class Series:
    """One model's points `(x, y)` in x order, with an optional band `(lo, hi)` per point drawn
    when the model stands alone (its image-bootstrap interval, or its spread over masks)."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    band: tuple[tuple[float, float], ...] | None = None


def group_curve(members: Sequence[Series]) -> Curve:
    """Mean and sample sd over a group's seeds at every x all of them measured."""
    common = sorted(set.intersection(*(set(s.x) for s in members))) if members else []
    values = [[s.y[s.x.index(x)] for s in members] for x in common]
    means, stds = zip(*(mean_std(v) for v in values)) if values else ((), ())
    return Curve(tuple(common), tuple(means), tuple(stds), tuple(len(members) for _ in common))


def draw_series(ax, series: Mapping[str, Series], colors: Mapping[str, RGB],
                groups: Mapping[str, Sequence[str]] | None = None, *, marker: str = "o", label: str = "{}",
                **kwargs: Any) -> None:
    """One curve per model; a seed group of two or more members (`groups`: label -> model names,
    as `coanalysis.report.findings.seed_groups` gives them) draws its seeds as thin lines and the
    mean over seeds with a ±1 sd band and error bars, labelled with the number of seeds. A single
    model draws its own `band`. Models missing from `groups` stand alone; `label` formats names."""
    groups = {k: [m for m in v if m in series] for k, v in (groups or {}).items()}
    grouped = {m for members in groups.values() if len(members) > 1 for m in members}
    for name, s in series.items():
        if name in grouped or not s.x:
            continue
        if s.band is not None:
            ax.fill_between(s.x, [b[0] for b in s.band], [b[1] for b in s.band], color=colors[name], alpha=0.2,
                            linewidth=0)
        ax.plot(s.x, s.y, marker=marker, color=colors[name], label=label.format(name), **kwargs)
    for group, members in groups.items():
        if len(members) < 2:
            continue
        color = colors[members[0]]
        for m in members:
            ax.plot(series[m].x, series[m].y, color=color, alpha=0.35, linewidth=0.8, **kwargs)
        curve = group_curve([series[m] for m in members])
        plot_curve(ax, curve, color=color, label=label.format(f"{group} ({len(members)} seeds, mean ± sd)"),
                   marker=marker, **kwargs)


def band_of(points: Iterable[tuple[float, Mapping[str, Any]]], scale: float = 100.0):
    """`Series.band` from cells' stored 95% intervals (fractions) at their x, in x order; None
    when any cell has none (results before schema 3)."""
    pts = sorted(points, key=lambda p: p[0])
    if not pts or not all(cell.get("interval") for _, cell in pts):
        return None
    return tuple((scale * cell["interval"][0], scale * cell["interval"][1]) for _, cell in pts)


def heatmap(ax, values: Sequence[Sequence[float]], rows: Sequence[str], columns: Sequence[str], *,
            vmin: float = 0.0, vmax: float = 100.0, cmap: str = "viridis", fmt: str = "{:.0f}",
            colorbar: str | None = "accuracy") -> None:
    """A row × column grid of numbers (e.g. corruption × severity accuracies, %), annotated."""
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(columns)), labels=list(columns))
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.grid(False)
    mid = (vmin + vmax) / 2
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="white" if v < mid else "black")
    if colorbar is not None:
        ax.figure.colorbar(image, ax=ax, label=AXES.get(colorbar, colorbar), shrink=0.9)


def grouped_bars(ax, values: Mapping[str, Sequence[float]], groups: Sequence[str], colors: Mapping[str, RGB], *,
                 errors: Mapping[str, Sequence[float]] | None = None, baseline: str | None = None) -> None:
    """Bars of each model side by side in each group (e.g. per position or per metric), with
    error bars where `errors` gives a spread."""
    names = list(values)
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
        yerr = errors.get(name) if errors else None
        ax.bar(xs, values[name], width, color=colors[name], label=name, yerr=yerr, capsize=3 if yerr else 0)
    ax.set_xticks(range(len(groups)), labels=list(groups))
    legend(ax, baseline)


def render_figure(fig, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> dict[str, bytes]:
    """Encode `fig` in each format (PNG at `dpi`; PDF without a creation date, so re-rendering
    the same results gives the same file) and close it."""
    out = {}
    for fmt in formats:
        buf = io.BytesIO()
        if fmt == "pdf":
            fig.savefig(buf, format="pdf", metadata={"CreationDate": None})
        else:
            fig.savefig(buf, format=fmt, dpi=dpi)
        out[fmt] = buf.getvalue()
    plt.close(fig)
    return out


def new_panels(rows: int, cols: int, width: float, height: float, **kwargs):
    """A figure with a `(rows, cols)` array of axes (always 2-D) in the report's style."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    return plt.subplots(rows, cols, figsize=(width, height), dpi=150, constrained_layout=True, squeeze=False,
                        **kwargs)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render `fig` to PNG or PDF bytes and close it."""
    return render_figure(fig, (fmt,))[fmt]
