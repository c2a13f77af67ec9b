"""Features: what an encoder gives for a set of images, and the cache that keeps it.

- `extraction`: `EvalData`, batched global features (`extract_features`), the feature cache keyed
  by checkpoint content and protocol, `to_input`;
- `local_maps`: the local maps `(N, C, h, w)` of a chosen layer, cached as the features are.

May import: `results`, `models`, torch. Never an analysis or the render side.
`coanalysis.features.EvalData` and the other names of the former `coanalysis/features.py` still
resolve here for one release (deprecated: import them from `coanalysis.features.extraction`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from coanalysis.results.moved_names import forward_moved_name

    return forward_moved_name(__name__, "coanalysis.features.extraction", name)
