"""What a result is, torch-free: records, statistics and derived numbers read by the render side.

- `store`: `Result` records, their JSON files and the locked `ResultsStore` (cells merged, never lost);
- `stats`: bootstrap intervals, paired differences, seed groups and findings (PROTOCOLS §11–12, §15);
- `corruption_names`: the corruption names, groups, severities and per-image seeds (the vocabulary
  analyses and report share);
- `derived/`: numbers and codecs computed from stored cells (mCE, ERF sizes).

May import: `models.trainer_io` (errors, atomic writes; torch-free), numpy, scipy. Never torch, a
model, an analysis or the render side. `coanalysis.results.Result` and the other names of the
former `coanalysis/results.py` still resolve here for one release (deprecated: import them from
`coanalysis.results.store`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from coanalysis.results.moved_names import forward_moved_name

    return forward_moved_name(__name__, "coanalysis.results.store", name)
