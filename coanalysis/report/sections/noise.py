"""Section 3: accuracy under Gaussian noise (PROTOCOLS.md section 3)."""

from __future__ import annotations

from coanalysis.figures.noise import noise_figure
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import FigureBlock, Section, cell_takeaway, interval_table


def _sigma(cell: dict) -> float:
    return cell["sigma"]


def build(data: ReportData) -> Section | None:
    results = data.of("noise")
    if not results:
        return None
    seeds = f"noise seed {results[0].protocol['seed']}"
    table = interval_table(data, results, _sigma, lambda s: f"σ={s:g}",
                           "Probe top-1 (%) under additive Gaussian noise, clipped to [0, 1].")
    return Section("noise", "Gaussian noise", intro="Additive Gaussian noise in pixel space (PROTOCOLS §3); "
                   "σ = 0 is the clean accuracy.",
                   figures=[FigureBlock("noise", noise_figure(results, data.colors, data.groups),
                                        "Accuracy against noise level; bands: 95% image-bootstrap intervals.",
                                        cell_takeaway(data, results, _sigma, "σ", note=seeds))],
                   tables=[table])
