"""AutoAttack robust accuracy against epsilon, one panel per norm; PGD's curve dashed when present."""

from __future__ import annotations

from coanalysis.figures.style import Series, draw_series, new_figure
from coanalysis.figures.pgd import pgd_curve
from coanalysis.results.store import Result


def autoattack_figure(results: list[Result], pgd: dict[str, Result], colors: dict, norm: str,
                      groups: dict | None = None):
    """AutoAttack accuracy against epsilon (a seed group: mean ± sd over seeds), PGD dashed."""
    fig, ax = new_figure()
    draw_series(ax, {r.model["name"]: Series(*map(tuple, pgd_curve(r, norm))) for r in results}, colors, groups,
                label="{} AutoAttack")
    for result in results:
        name = result.model["name"]
        if name in pgd:
            px, py = pgd_curve(pgd[name], norm)
            if px:
                ax.plot(px, py, linestyle="--", marker=".", color=colors[name], alpha=0.7, label=f"{name} PGD")
    p = results[0].protocol
    ax.set_xlabel("ε, L∞ (in /255 of the pixel range)" if norm == "linf"
                  else "ε, L2 (pixel units, images in [0, 1])")
    ax.set_ylabel("robust top-1 accuracy (%)")
    ax.set_title(f"AutoAttack ({p['version']}) {'L∞' if norm == 'linf' else 'L2'} (n = {p['n'] or p['data']['n']})")
    ax.legend(frameon=False, fontsize=7)
    return fig
