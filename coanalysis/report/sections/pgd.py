"""Adversarial robustness (PROTOCOLS.md section 6): PGD robust accuracy against epsilon."""

from __future__ import annotations

from coanalysis.figures.pgd import pgd_curve, pgd_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, diff_takeaway

UNIT = {"linf": "/255", "l2": ""}
NAME = {"linf": "L∞", "l2": "L2"}


def build(data: ReportData) -> Section | None:
    results = data.of("pgd")
    if not results:
        return None
    p = results[0].protocol
    n = p["n"] or p["data"]["n"]
    step = f"absolute step {p['abs_stepsize']}" if p.get("abs_stepsize") else f"relative step {p['rel_stepsize']}"
    seeds = (f"{p['steps']} steps, {step}, {'random start' if p['random_start'] else 'no random start'}, "
             f"{p['restarts']} restart{'s' if p['restarts'] > 1 else ''}, seed {p['seed']}")
    figures, tables = [], []
    for norm in ("linf", "l2"):
        curves = {r.model["name"]: pgd_curve(r, norm) for r in results}
        curves = {k: v for k, v in curves.items() if v[0]}
        if not curves:
            continue
        figures.append(FigureBlock(f"pgd-{norm}", pgd_figure(results, data.colors, norm),
                                   f"Robust accuracy under {NAME[norm]} PGD against the budget ε.",
                                   diff_takeaway(data, curves, "ε", UNIT[norm], n, seeds)))
        xs = sorted({x for xs, _ in curves.values() for x in xs})
        rows = [[name] + [f"{dict(zip(cx, cy)).get(x, float('nan')):.1f}" for x in xs]
                for name, (cx, cy) in curves.items()]
        tables.append(Table(["model"] + [f"ε={x:g}{UNIT[norm]}" for x in xs], rows,
                            f"{NAME[norm]} PGD robust top-1 (%), n = {n}; every adversarial image lies within ε "
                            "(largest perturbation recorded per cell)."))
    return Section("pgd", "Adversarial robustness (PGD)",
                   intro=f"Projected gradient descent through foolbox on probe ∘ encoder, images in [0, 1] "
                         f"(PROTOCOLS §6): {seeds}. An image counts as robust when it is classified correctly "
                         "both clean and attacked; ε = 0 is the clean accuracy.", figures=figures, tables=tables)
