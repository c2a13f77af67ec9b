"""coanalysis: load SSL checkpoints (ours or third-party) and measure what they learned and how robust it is.

`load_encoder(path)` gives an encoder in eval mode with `forward_local` / `forward_global` on RGB
images in [0, 1]. Analyses live in `coanalysis.analyses`, figures in `coanalysis.figures`, the
HTML report in `coanalysis.report`, and the command line in `coanalysis.cli`.
"""

from coanalysis.loading import load_encoder

__all__ = ["load_encoder"]
