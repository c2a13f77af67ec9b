"""Adversarial robustness (PROTOCOLS.md section 6): PGD robust accuracy against epsilon, with the
convergence check of section 12 (the largest epsilon at 2x the steps; flagged beyond 1 point)."""

from __future__ import annotations

from coanalysis.figures.pgd import UNITS, pgd_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, cell_takeaway, interval_table

UNIT = {"linf": "/255", "l2": ""}
NAME = {"linf": "L∞", "l2": "L2"}
FLAG = "⚑"


def _convergence(data: ReportData, results) -> tuple[Table | None, list[str]]:
    rows, flagged = [], []
    for r in results:
        for key, cell in r.cells.items():
            check = cell.get("convergence")
            if not check:
                continue
            mark = f"{FLAG} not converged" if check["flagged"] else "converged"
            rows.append([r.model["name"], key, f"{100 * cell['accuracy']:.1f}", f"{100 * check['accuracy']:.1f}",
                         f"{check['difference_points']:+.1f}", mark])
            if check["flagged"]:
                flagged.append(f"{r.model['name']} {key}: {100 * cell['accuracy']:.1f}% at {check['steps'] // 2} "
                               f"steps but {100 * check['accuracy']:.1f}% at {check['steps']} steps")
    if not rows:
        return None, []
    steps = results[0].protocol["steps"]
    table = Table(["model", "cell", f"robust top-1 at {steps} steps (%)", f"at {2 * steps} steps (%)",
                   "difference (points)", "check"], rows,
                  f"Convergence check (PROTOCOLS §12): the largest ε of each norm attacked again with twice the "
                  f"steps; {FLAG} marks a cell whose robust accuracy moved by more than 1 point, so the attack had "
                  "not converged and the robust accuracy above overstates robustness.", name="pgd-convergence",
                  title="Convergence check")
    return table, flagged


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
        def x_of(cell: dict, norm: str = norm) -> float | None:
            return UNITS[norm] * cell["eps"] if cell.get("norm") == norm else None

        if not any(x_of(c) is not None for r in results for c in r.cells.values()):
            continue
        figures.append(FigureBlock(f"pgd-{norm}", pgd_figure(results, data.colors, norm, data.groups),
                                   f"Robust accuracy under {NAME[norm]} PGD against the budget ε; bands: 95% "
                                   "image-bootstrap intervals.",
                                   cell_takeaway(data, results, x_of, "ε", UNIT[norm], note=f"PGD {seeds}")))
        tables.append(interval_table(data, results, x_of, lambda x, norm=norm: f"ε={x:g}{UNIT[norm]}",
                                     f"{NAME[norm]} PGD robust top-1 (%), n = {n}; every adversarial image lies "
                                     "within ε (largest perturbation recorded per cell)."))
    check, flagged = _convergence(data, results)
    notes = [f"{FLAG} attack not converged (PROTOCOLS §12): {line}; read this cell as an upper bound."
             for line in flagged]
    if check is not None:
        tables.append(check)
    return Section("pgd", "Adversarial robustness (PGD)",
                   intro=f"Projected gradient descent through foolbox on probe ∘ encoder, images in [0, 1] "
                         f"(PROTOCOLS §6): {seeds}. An image counts as robust when it is classified correctly "
                         "both clean and attacked; ε = 0 is the clean accuracy.", figures=figures, tables=tables,
                   notes=notes)
