"""How the command runs the corruption sources: worker processes and the uint8 cache folder.

These change how fast the images come, never which bytes they are, so they are not part of the
protocol recorded in the results; the command passes them to the analysis through the context
(`EvalContext.corruption`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coanalysis.features.extraction import cache_root


@dataclass(frozen=True)
class CorruptionSettings:
    workers: int | None = None  # corruption worker processes (1: none, in this process); None: all cores
    cache_dir: Path | None = None  # uint8 cache of corrupted images; None: `default_corruption_cache()`


def default_corruption_cache() -> Path:
    """`<co-ssl cache>/corruptions` ($CO_SSL_CACHE or ~/.cache/co-ssl), beside the feature cache."""
    return cache_root() / "corruptions"
