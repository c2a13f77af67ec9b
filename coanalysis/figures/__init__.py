"""Figures: pure functions from stored results to matplotlib figures.

No figure function reads files or models; each takes `Result` records and a colour per model,
so every figure of a report uses one colour per model. Report sections call the figure functions
they need directly.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402


def model_colors(names: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per model, fixed by the model's position in `names` (colour-blind palette)."""
    palette = sns.color_palette("colorblind", max(len(names), 1))
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def new_figure(width: float = 5.0, height: float = 3.4):
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    fig, ax = plt.subplots(figsize=(width, height), dpi=150, constrained_layout=True)
    return fig, ax


def new_panels(rows: int, cols: int, width: float, height: float, **kwargs):
    """A figure with a `(rows, cols)` array of axes (always 2-D) in the report's style."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    return plt.subplots(rows, cols, figsize=(width, height), dpi=150, constrained_layout=True, squeeze=False,
                        **kwargs)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    """Render `fig` to PNG or PDF bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150 if fmt == "png" else None)
    plt.close(fig)
    return buf.getvalue()
