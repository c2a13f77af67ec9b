"""Per-image random streams: the same image gets the same noise, mask or crop whatever the batch
size, the batch order or an interruption in between. Each stream is seeded by
`(protocol seed, condition index, image position)`."""

from __future__ import annotations

import torch


def image_seed(seed: int, condition: int, position: int) -> int:
    """A 63-bit seed for one (protocol seed, condition, image) triple."""
    return (seed * 1_000_003 + condition * 100_003 + position * 7_919 + 12_345) % (2 ** 63 - 1)


def per_image_normal(shape: tuple[int, ...], seed: int, condition: int, positions: torch.Tensor) -> torch.Tensor:
    """`(B, *shape)` standard normal noise, one seeded stream per image position."""
    out = torch.empty((len(positions), *shape))
    g = torch.Generator()
    for row, pos in enumerate(positions.tolist()):
        g.manual_seed(image_seed(seed, condition, pos))
        out[row] = torch.randn(shape, generator=g)
    return out


def per_image_generator(seed: int, condition: int, position: int) -> torch.Generator:
    return torch.Generator().manual_seed(image_seed(seed, condition, position))
