"""Analyses by name: the `ANALYSES` table.

An analysis is a set of cells (conditions) computed by a pure function
`run_cell(ctx, protocol, key) -> dict`: no plotting and no file writing inside. The runner
(`coanalysis.pipeline.run_analysis`) stores each finished cell, so interrupted runs resume cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from coanalysis.analyses import corruptions, crops, dropout, noise, pgd


@dataclass(frozen=True)
class Analysis:
    """One entry of `ANALYSES`."""

    name: str
    title: str
    protocol_type: type  # frozen dataclass with to_json()
    cells: Callable[[Any], list[str]]  # protocol -> condition keys, in order
    run_cell: Callable[[Any, Any, str], dict]  # (EvalContext, protocol, key) -> measurements
    # protocol fields that only list conditions (e.g. the sigmas): a run with other values adds
    # cells to the stored result instead of conflicting with it
    condition_fields: tuple[str, ...] = ()
    # the protocol `coanalysis demo` runs, per preset ("cpu" must keep the whole demo under
    # 10 minutes on 2 cores); None: the demo skips this analysis
    demo: Callable[[str], Any] | None = None


def _corruptions_demo(preset: str) -> corruptions.CorruptionProtocol:
    # cpu: the 15 standard corruptions at all 5 severities on 300 of the 2 000 evaluation images
    if preset == "cpu":
        return corruptions.CorruptionProtocol(corruptions=corruptions.STANDARD, n=300)
    return corruptions.CorruptionProtocol()


def _pgd_demo(preset: str) -> pgd.PGDProtocol:
    # cpu: 10 steps on 100 images, four L-inf and two L2 budgets (epsilon 0 once, under L-inf)
    if preset == "cpu":
        return pgd.PGDProtocol(linf_eps=(0.0, 1 / 255, 2 / 255, 4 / 255), l2_eps=(0.25, 0.5), steps=10, n=100)
    return pgd.PGDProtocol()


ANALYSES: dict[str, Analysis] = {
    "noise": Analysis("noise", "Gaussian noise (PROTOCOLS 3)", noise.NoiseProtocol, noise.cells, noise.run_cell,
                      condition_fields=("sigmas",), demo=lambda preset: noise.NoiseProtocol()),
    "corruptions": Analysis("corruptions", "Common corruptions (PROTOCOLS 4)", corruptions.CorruptionProtocol,
                            corruptions.cells, corruptions.run_cell, condition_fields=("corruptions", "severities"),
                            demo=_corruptions_demo),
    "dropout": Analysis("dropout", "Internal corruption of the local map (PROTOCOLS 5)", dropout.DropoutProtocol,
                        dropout.cells, dropout.run_cell,
                        condition_fields=("spatial_ps", "channel_ps", "noise_alphas"),
                        demo=lambda preset: dropout.DropoutProtocol()),
    "pgd": Analysis("pgd", "PGD adversarial robustness (PROTOCOLS 6)", pgd.PGDProtocol, pgd.cells, pgd.run_cell,
                    condition_fields=("linf_eps", "l2_eps"), demo=_pgd_demo),
    "crops": Analysis("crops", "Crop-scale accuracy (PROTOCOLS 7)", crops.CropProtocol, crops.cells, crops.run_cell,
                      condition_fields=("scales",), demo=lambda preset: crops.CropProtocol()),
}
