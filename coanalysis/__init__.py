"""coanalysis: load SSL checkpoints (ours or third-party) and measure what they learned and how robust it is.

`load_encoder(path)` gives an encoder in eval mode with `forward_local` / `forward_global` on RGB
images in [0, 1]. Analyses live in `coanalysis.analyses`, figures in `coanalysis.figures`, the
HTML report in `coanalysis.report`, and the command line in `coanalysis.cli`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_encoder"]


def __getattr__(name: str) -> Any:
    """`coanalysis.load_encoder`, imported on first use so that the torch-free render side
    (`coanalysis.report`, `coanalysis.figures`) can be imported without torch."""
    if name == "load_encoder":
        from coanalysis.loading import load_encoder
        return load_encoder
    raise AttributeError(f"module 'coanalysis' has no attribute {name!r}")
