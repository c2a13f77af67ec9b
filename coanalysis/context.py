"""`EvalContext`: one model ready for analysis (encoder + probe on the device, evaluation data).

Analyses receive it and classify images through it, so precision, batching and the handling of
undecodable files are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from coanalysis.features import EvalData, FeatureCache, autocast, to_input
from coanalysis.loading import Encoder
from coanalysis.probe import LinearProbe

# (float images in [0, 1] (B, 3, H, W) on the device, positions (B,)) -> images of the same kind
ImageTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EvalContext:
    encoder: Encoder  # on `device`, eval mode
    probe: LinearProbe | None  # on `device`, eval mode; None for analyses that need no probe (ERF)
    data: EvalData  # the evaluation subset
    device: torch.device
    precision: str  # "bf16" or "fp32"
    batch_size: int = 256
    workers: int = 0
    probe_identity: dict = field(default_factory=dict)  # how the probe was fitted (recorded in results)
    clean_accuracy: float | None = None  # probe accuracy on `data` from cached features
    extras: dict = field(default_factory=dict)  # per-run caches shared between cells
    cache: FeatureCache | None = None  # on-disk feature cache (local maps); None: no caching
    progress: bool = False  # show progress bars inside long cells

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] on the device -> float32 logits `(B, K)`."""
        with autocast(self.device, self.precision):
            features = self.encoder.forward_global(x)
        return self.probe(features.float())

    @torch.no_grad()
    def accuracy(self, transform: ImageTransform | None = None) -> tuple[float, int]:
        """(top-1 accuracy, n) of the probe on `data`, after `transform` when given."""
        correct = total = 0
        for images, labels, positions in self.data.batches(self.batch_size, self.workers):
            x = to_input(images, self.device)
            if transform is not None:
                x = transform(x, positions)
            pred = self.logits(x).argmax(1).cpu()
            correct += int((pred == labels).sum())
            total += len(labels)
        return correct / max(total, 1), total
