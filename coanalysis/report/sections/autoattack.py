"""AutoAttack (pyautoattack): robust accuracy against epsilon, next to PGD's at the same budgets."""

from __future__ import annotations

import dataclasses

from coanalysis.figures.autoattack import autoattack_figure
from coanalysis.figures.pgd import UNITS, pgd_curve
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, cell_takeaway, interval_table

UNIT = {"linf": "/255", "l2": ""}
NAME = {"linf": "L∞", "l2": "L2"}


def build(data: ReportData) -> Section | None:
    results = data.of("autoattack")
    if not results:
        return None
    p = results[0].protocol
    n = p["n"] or p["data"]["n"]
    pgd = {r.model["name"]: r for r in data.of("pgd")}
    seeds = f"{p['version']} suite ({', '.join(p['attacks'])}), seed {p['seed']}"
    figures, tables = [], []
    for norm in ("linf", "l2"):
        curves = {r.model["name"]: pgd_curve(r, norm) for r in results}
        curves = {k: v for k, v in curves.items() if v[0]}
        if not curves:
            continue

        def x_of(cell: dict, norm: str = norm) -> float | None:
            return UNITS[norm] * cell["eps"] if cell.get("norm") == norm else None

        figures.append(FigureBlock(f"autoattack-{norm}", autoattack_figure(results, pgd, data.colors, norm, data.groups),
                                   f"Robust accuracy under {NAME[norm]} AutoAttack against ε (PGD dashed where run).",
                                   cell_takeaway(data, results, x_of, "ε", UNIT[norm], note=seeds)))
        table = interval_table(data, results, x_of, lambda x, norm=norm: f"ε={x:g}{UNIT[norm]}",
                               f"{NAME[norm]} AutoAttack robust top-1 (%), n = {n}.", name=f"autoattack-{norm}")
        xs = sorted({x for xs, _ in curves.values() for x in xs})
        pgd_rows = [[f"PGD {name}"] + [f"{at[x]:.1f}" if x in at else "–" for x in xs]
                    for name, at in ((k, dict(zip(*pgd_curve(pgd[k], norm)))) for k in curves if k in pgd)]
        if pgd_rows:  # PGD at the same budgets, for comparison (its subset may differ in size)
            table = dataclasses.replace(table, rows=table.rows + pgd_rows, caption=table.caption + " PGD rows: PGD's "
                                        "robust top-1 at the same ε (its subset may differ in size).")
        tables.append(table)
    return Section("autoattack", "Adversarial robustness (AutoAttack)",
                   intro=f"AutoAttack through pyautoattack on probe ∘ encoder, images in [0, 1]: {seeds}. "
                         "Each attack runs on the images the previous ones left correct; an image counts as robust when it is "
                         "classified correctly both clean and after the suite; ε = 0 is the clean accuracy.",
                   figures=figures, tables=tables)
