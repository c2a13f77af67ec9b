"""Names of the two former root modules that are now rooms (`coanalysis/features.py` ->
`coanalysis.features.extraction`, `coanalysis/results.py` -> `coanalysis.results.store`), still
readable from the old module path for one release with a `DeprecationWarning`. Torch-free."""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Any


def forward_moved_name(package: str, target: str, name: str) -> Any:
    """`package.name` read from `target` with a `DeprecationWarning`; a name of one of the
    package's own modules (or a dunder) is left to the import system."""
    if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is not None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module = importlib.import_module(target)
    if not hasattr(module, name):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    warnings.warn(f"{package}.{name} moved to {target}.{name}; the old path goes in the next release",
                  DeprecationWarning, stacklevel=3)
    return getattr(module, name)
