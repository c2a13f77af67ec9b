"""Analyses by name: the `ANALYSES` table.

An analysis is a set of cells (conditions) computed by a pure function
`run_cell(ctx: EvalContext, protocol, key) -> dict`: no plotting and no file writing inside; what the
cells of one model share (images, local maps, corruption providers) is kept in the context's typed fields. The runner
(`coanalysis.run.cell_runner.run_analysis`) stores each finished cell, so interrupted runs resume cell by cell.

`context` holds `EvalContext`; `similarity` is the cross-model analysis (CKA, RankMe) that
`coanalysis similarity` runs outside the table. May import: `results`, `models`, `features`, `data`,
`probes`, `distributed`, torch and the libraries each analysis wraps. Never `run`, `commands` or
the render side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from coanalysis.analyses import (autoattack, bagssl, corruptions, crops, dropout, erf, noise, pgd, redundancy, shift,
                                 token_dropout)


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
    # its cells classify images through the context's correctness helpers (or split their batches
    # themselves, as PGD does): under torchrun one cell's images may be split over the ranks
    splits_images: bool = False


def _corruptions_demo(preset: str) -> corruptions.CorruptionProtocol:
    # cpu: the 15 standard corruptions at all 5 severities on 300 of the 2 000 evaluation images
    if preset == "cpu":
        return corruptions.CorruptionProtocol(corruptions=corruptions.STANDARD, n=300)
    return corruptions.CorruptionProtocol()


def _pgd_demo(preset: str) -> pgd.PGDProtocol:
    # cpu: 20 steps of 2.5 eps / 20 (Madry et al.'s rule: 10 steps of 0.1 eps stopped 10-13 points short of a
    # converged attack) on 200 images, four L-inf and two L2 budgets (epsilon 0 once, under L-inf); the
    # largest budget of each norm is checked at 40 steps (PROTOCOLS 12)
    if preset == "cpu":
        return pgd.PGDProtocol(linf_eps=(0.0, 1 / 255, 2 / 255, 4 / 255), l2_eps=(0.25, 0.5), steps=20,
                               rel_stepsize=0.125, n=200)
    return pgd.PGDProtocol()


def _redundancy_demo(preset: str) -> redundancy.RedundancyProtocol:
    return redundancy.RedundancyProtocol(n_images=1000, n_pairs=10000) if preset == "cpu" \
        else redundancy.RedundancyProtocol(n_images=10000, n_pairs=100000)


def _erf_demo(preset: str) -> erf.ERFProtocol:
    return erf.ERFProtocol(n_images=64) if preset == "cpu" else erf.ERFProtocol(n_images=64, methods=erf.METHODS)


def _bagssl_demo(preset: str) -> bagssl.BagSSLProtocol:
    return bagssl.BagSSLProtocol(n_images=256) if preset == "cpu" else bagssl.BagSSLProtocol(n_images=10000)


ANALYSES: dict[str, Analysis] = {
    "noise": Analysis("noise", "Gaussian noise (PROTOCOLS 3)", noise.NoiseProtocol, noise.cells, noise.run_cell,
                      condition_fields=("sigmas",), demo=lambda preset: noise.NoiseProtocol(), splits_images=True),
    "corruptions": Analysis("corruptions", "Common corruptions (PROTOCOLS 4)", corruptions.CorruptionProtocol,
                            corruptions.cells, corruptions.run_cell, condition_fields=("corruptions", "severities"),
                            demo=_corruptions_demo, splits_images=True),
    "dropout": Analysis("dropout", "Internal corruption of the local map (PROTOCOLS 5)", dropout.DropoutProtocol,
                        dropout.cells, token_dropout.run_any_cell,  # ViTs: tokens (PROTOCOLS 13)
                        condition_fields=("spatial_ps", "channel_ps", "noise_alphas"),
                        demo=lambda preset: dropout.DropoutProtocol(), splits_images=True),
    "pgd": Analysis("pgd", "PGD adversarial robustness (PROTOCOLS 6)", pgd.PGDProtocol, pgd.cells, pgd.run_cell,
                    condition_fields=("linf_eps", "l2_eps"), demo=_pgd_demo, splits_images=True),
    "autoattack": Analysis("autoattack", "AutoAttack adversarial robustness", autoattack.AutoAttackProtocol,
                           autoattack.cells, autoattack.run_cell, condition_fields=("linf_eps", "l2_eps")),
    "shift": Analysis("shift", "Distribution shift: ImageNet-R, -A, -Sketch, -V2, -3DCC", shift.ShiftProtocol,
                      shift.cells, shift.run_cell, condition_fields=("sets", "corruptions", "severities")),
    "crops": Analysis("crops", "Crop-scale accuracy (PROTOCOLS 7)", crops.CropProtocol, crops.cells, crops.run_cell,
                      condition_fields=("scales",), demo=lambda preset: crops.CropProtocol(), splits_images=True),
    "redundancy": Analysis("redundancy", "Redundancy of local representations (PROTOCOLS 8)",
                           redundancy.RedundancyProtocol, redundancy.cells, redundancy.run_cell,
                           demo=_redundancy_demo),
    "erf": Analysis("erf", "Effective receptive fields (PROTOCOLS 9)", erf.ERFProtocol, erf.cells, erf.run_cell,
                    condition_fields=("coords", "methods"), demo=_erf_demo),
    "bagssl": Analysis("bagssl", "Whole versus bag of parts (PROTOCOLS 10)", bagssl.BagSSLProtocol, bagssl.cells,
                       bagssl.run_cell, condition_fields=("patch_sizes",), demo=_bagssl_demo),
}
