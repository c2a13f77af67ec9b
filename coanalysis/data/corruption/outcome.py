"""What a corruption source returns for one (corruption, severity) cell, and what it needs of the context.

`Corrupted`: uint8 images `(N, 3, H, W)` on the CPU with their labels and what to record about
them; `Missing`: the pre-rendered set does not hold the cell (the reason is recorded). The layout
helpers convert between the sources' NHWC numpy arrays and the context's NCHW tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from coanalysis.features.extraction import EvalData, SubsetImages


class EvalImages(Protocol):
    """What a source takes from the analysis context (`coanalysis.analyses.context.EvalContext` is one)."""

    data: EvalData

    def images(self, n: int | None = None) -> SubsetImages: ...


@dataclass(frozen=True)
class Corrupted:
    """Corrupted images uint8 `(N, 3, H, W)` (CPU), their labels `(N,)` and what to record about them."""

    images: torch.Tensor
    labels: torch.Tensor
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Missing:
    """A (corruption, severity) the pre-rendered set does not hold."""

    reason: str


def to_nhwc(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


def to_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `(N, 3, h, w)` -> uint8 `(N, 3, size, size)`, bilinear with antialiasing."""
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def seeded_subset(total: int, n: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of the first `n` of a seeded permutation of range(total) (all of them when n covers it)."""
    if n is None or n >= total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:n].sort().values
