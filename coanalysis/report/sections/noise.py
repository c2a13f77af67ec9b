"""Section 3: accuracy under Gaussian noise (PROTOCOLS.md section 3)."""

from __future__ import annotations

from coanalysis.figures.noise import noise_curve, noise_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, Table, diff_takeaway


def build(data: ReportData) -> Section | None:
    results = data.of("noise")
    if not results:
        return None
    curves = {r.model["name"]: noise_curve(r) for r in results}
    n = results[0].protocol["data"]["n"]
    seeds = f"noise seed {results[0].protocol['seed']}"
    sigmas = results[0].protocol["sigmas"]
    table = Table(["model"] + [f"σ={s:g}" for s in sigmas],
                  [[name] + [f"{y:.1f}" for y in ys] for name, (_, ys) in curves.items()],
                  "Probe top-1 (%) under additive Gaussian noise, clipped to [0, 1].")
    return Section("noise", "Gaussian noise", intro="Additive Gaussian noise in pixel space (PROTOCOLS §3); "
                   "σ = 0 is the clean accuracy.",
                   figures=[FigureBlock("noise", noise_figure(results, data.colors),
                                        "Accuracy against noise level.",
                                        diff_takeaway(data, curves, "σ", "", n, seeds))],
                   tables=[table])
