"""A procedural dataset for tests: tiny, deterministic, and learnable. Never a user default.

Each class is a coloured shape (disc, square, cross or bar, in one of several hues) on a noisy
background, at a random position and scale. Images are 32x32 RGB uint8; the generator is seeded
per split, so every call returns the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch

from co_ssl_train.data.datasets import DatasetInfo, ImageDataset, resize_uint8

NUM_CLASSES = 4
SIZES = {"train": 512, "test": 256}
SIDE = 32
_HUES = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.3, 0.9], [0.9, 0.8, 0.1]])


def make_images(n: int, seed: int, num_classes: int = NUM_CLASSES, side: int = SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images `(n, 3, side, side)` uint8 and labels `(n,)`, class k a shape of kind k % 4."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    centre = side * (0.3 + 0.4 * torch.rand(n, 2, generator=g))
    radius = side * (0.15 + 0.1 * torch.rand(n, generator=g))
    dy = (ys[None] - centre[:, 0, None, None]) / radius[:, None, None]
    dx = (xs[None] - centre[:, 1, None, None]) / radius[:, None, None]
    shapes = torch.stack([
        dx ** 2 + dy ** 2 <= 1,  # disc
        (dx.abs() <= 0.8) & (dy.abs() <= 0.8),  # square
        ((dx.abs() <= 0.25) & (dy.abs() <= 1)) | ((dy.abs() <= 0.25) & (dx.abs() <= 1)),  # cross
        (dy.abs() <= 0.3) & (dx.abs() <= 1.2),  # bar
    ])
    kind = labels % 4
    mask = shapes[kind, torch.arange(n)].float()
    colour = _HUES[labels % len(_HUES)] * (0.8 + 0.2 * torch.rand(n, 1, generator=g))
    background = 0.3 + 0.15 * torch.rand(n, 3, side, side, generator=g)
    images = background * (1 - mask[:, None]) + colour[:, :, None, None] * mask[:, None]
    return (images * 255).round().clamp(0, 255).to(torch.uint8), labels


def load(split: str, root: Path | None, download: bool, image_size: int | None) -> ImageDataset:
    images, labels = make_images(SIZES[split], seed=0 if split == "train" else 1)
    size = image_size or SIDE
    info = DatasetInfo(name="synthetic", split=split, num_classes=NUM_CLASSES, image_size=size,
                       source="procedural", notes="test data only")
    return ImageDataset(resize_uint8(images, size), labels, tuple(f"shape{k}" for k in range(NUM_CLASSES)), info)
