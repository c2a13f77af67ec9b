"""coanalysis: load SSL checkpoints (ours or third-party) and measure what they learned and how robust it is.

`load_encoder(path)` gives an encoder in eval mode with `forward_local` / `forward_global` on RGB
images in [0, 1]. The package is laid out in the order data flows (STYLE.md principle 1):

- `models/`: checkpoint → encoder (loading, the checkpoint formats, readouts, the zoo, the trainer door);
- `data/`: the evaluation images (sample images, shift sets, per-image seeds, corruptions);
- `features/`: global features and local maps of an encoder, and their cache;
- `probes/`: linear probe, kNN, CKA/RankMe on frozen features;
- `analyses/`: one module per analysis, the `ANALYSES` table (pure cell functions);
- `run/`: sessions, contexts and the cell runner that turn options into stored cells, the demo;
- `distributed/`: ranks under torchrun and nodes sharing `--out`;
- `results/`: result records, statistics and derived numbers (torch-free);
- `figures/`, `report/`: the render side, from results JSON alone (torch-free);
- `commands/` and `cli`: the command line.

Modules that lived at the package root before the rooms (`coanalysis.loading`, `coanalysis.stats`,
...) still import from their old paths for one release, with a `DeprecationWarning` naming the new one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

__all__ = ["load_encoder"]

# Old module path (under coanalysis) -> where it lives now. Kept for one release.
MOVED = {
    "loading": "models.loading", "readout": "models.readout", "trainer": "models.trainer",
    "trainer_io": "models.trainer_io", "zoo": "models.zoo", "zoo_table": "models.zoo_table",
    "formats": "models.formats",
    "sample_images": "data.sample_images", "shift_sets": "data.shift_sets", "seeding": "data.seeding",
    "corruption": "data.corruption",
    "local_features": "features.local_maps",
    "corruption.names": "results.corruption_names",
    "probe": "probes.linear", "probe_fitting": "run.probe_fitting", "knn": "probes.knn",
    "similarity": "analyses.similarity",
    "session": "run.session", "context": "analyses.context", "cell_runner": "run.cell_runner",
    "pipeline": "run.pipeline", "end_to_end": "run.end_to_end", "environment": "run.environment",
    "sharding": "distributed.sharding", "sharded_features": "distributed.sharded_features",
    "image_split": "distributed.image_split",
    "stats": "results.stats", "derived": "results.derived",
}


def _new_name(fullname: str) -> str | None:
    """`coanalysis.formats.base` -> `coanalysis.models.formats.base`; None for a name that did not move."""
    parts = fullname.split(".")
    if parts[0] != __name__:
        return None
    for cut in range(len(parts), 1, -1):  # the longest moved prefix: corruption.names before corruption
        old = ".".join(parts[1:cut])
        if old in MOVED:
            return ".".join([__name__, MOVED[old], *parts[cut:]])
    return None


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module that now lives at the new one (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        new = _new_name(fullname)
        if new is None or importlib.util.find_spec(new) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = _new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        pass  # the module at its new path is already executed


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    """`coanalysis.load_encoder`, imported on first use so that the torch-free render side
    (`coanalysis.report`, `coanalysis.figures`) can be imported without torch."""
    if name == "load_encoder":
        from coanalysis.models.loading import load_encoder
        return load_encoder
    if name in MOVED:  # `from coanalysis import stats` (old): the module at its new path
        return importlib.import_module(_new_name(f"{__name__}.{name}"))
    raise AttributeError(f"module 'coanalysis' has no attribute {name!r}")
