"""Analyses by name: the `ANALYSES` table.

An analysis is a set of cells (conditions) computed by a pure function
`run_cell(ctx, protocol, key) -> dict`: no plotting and no file writing inside. The runner
(`coanalysis.runner`) stores each finished cell, so interrupted runs resume cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from coanalysis.analyses import noise


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


ANALYSES: dict[str, Analysis] = {
    "noise": Analysis("noise", "Gaussian noise (PROTOCOLS 3)", noise.NoiseProtocol, noise.cells, noise.run_cell,
                      condition_fields=("sigmas",), demo=lambda preset: noise.NoiseProtocol()),
}
