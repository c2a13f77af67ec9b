"""Analyses by name: the `ANALYSES` table.

An analysis is a set of cells (conditions) computed by a pure function
`run_cell(ctx, protocol, key) -> dict`: no plotting and no file writing inside. The runner
(`coanalysis.runner`) stores each finished cell, so interrupted runs resume cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from coanalysis.analyses import bagssl, erf, noise, redundancy


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


def _redundancy_demo(preset: str) -> redundancy.RedundancyProtocol:
    return redundancy.RedundancyProtocol(n_images=1000, n_pairs=10000) if preset == "cpu" \
        else redundancy.RedundancyProtocol(n_images=10000, n_pairs=100000)


def _erf_demo(preset: str) -> erf.ERFProtocol:
    return erf.ERFProtocol(n_images=64) if preset == "cpu" else erf.ERFProtocol(n_images=64, methods=erf.METHODS)


def _bagssl_demo(preset: str) -> bagssl.BagSSLProtocol:
    return bagssl.BagSSLProtocol(n_images=256) if preset == "cpu" else bagssl.BagSSLProtocol(n_images=10000)


ANALYSES: dict[str, Analysis] = {
    "noise": Analysis("noise", "Gaussian noise (PROTOCOLS 3)", noise.NoiseProtocol, noise.cells, noise.run_cell,
                      condition_fields=("sigmas",), demo=lambda preset: noise.NoiseProtocol()),
    "redundancy": Analysis("redundancy", "Redundancy of local representations (PROTOCOLS 8)",
                           redundancy.RedundancyProtocol, redundancy.cells, redundancy.run_cell,
                           demo=_redundancy_demo),
    "erf": Analysis("erf", "Effective receptive fields (PROTOCOLS 9)", erf.ERFProtocol, erf.cells, erf.run_cell,
                    condition_fields=("coords", "methods"), demo=_erf_demo),
    "bagssl": Analysis("bagssl", "Whole versus bag of parts (PROTOCOLS 10)", bagssl.BagSSLProtocol, bagssl.cells,
                       bagssl.run_cell, condition_fields=("patch_sizes",), demo=_bagssl_demo),
}
