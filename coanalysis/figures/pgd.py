"""PGD robust accuracy against the budget epsilon (PROTOCOLS.md section 6), one panel per norm."""

from __future__ import annotations

from coanalysis.figures.style import Series, band_of, draw_series, new_figure
from coanalysis.results.store import Result

UNITS = {"linf": 255.0, "l2": 1.0}  # L-inf budgets are drawn in /255


def pgd_curve(result: Result, norm: str) -> tuple[list[float], list[float]]:
    """(epsilons, robust accuracies in %) of one norm; L-inf epsilons in /255."""
    points = sorted((UNITS[norm] * c["eps"], 100 * c["accuracy"]) for c in result.cells.values()
                    if c.get("norm") == norm)
    return [p[0] for p in points], [p[1] for p in points]


def pgd_series(result: Result, norm: str) -> Series:
    xs, ys = pgd_curve(result, norm)
    cells = [(UNITS[norm] * c["eps"], c) for c in result.cells.values() if c.get("norm") == norm]
    return Series(tuple(xs), tuple(ys), band_of(cells))


def pgd_figure(results: list[Result], colors: dict, norm: str, groups: dict | None = None):
    """Robust accuracy against epsilon, bands as in `noise_figure` (interval, or seeds' ±1 sd)."""
    fig, ax = new_figure()
    draw_series(ax, {r.model["name"]: pgd_series(r, norm) for r in results}, colors, groups)
    p = results[0].protocol
    ax.set_xlabel("ε, L∞ (in /255 of the pixel range)" if norm == "linf" else "ε, L2 (pixel units, images in [0, 1])")
    ax.set_ylabel("robust top-1 accuracy (%)")
    ax.set_title(f"PGD {'L∞' if norm == 'linf' else 'L2'}, {p['steps']} steps "
                 f"(n = {p['n'] or p['data']['n']}, {p['restarts']} restart{'s' if p['restarts'] > 1 else ''})")
    ax.legend(frameon=False)
    return fig
