"""The generated source: imagecorruptions on the evaluation images, one seed per image.

Every image of the evaluation subset, uint8 H x W x 3 at the evaluation resolution (after the
evaluation resize/crop), is corrupted with its own seed `corruption_seed(seed, corruption,
severity, position)`. numpy's global generator is seeded with it and the two corruptions that
take a `seed=` argument (impulse_noise, glass_blur) get it too, so the bytes equal
`imagecorruptions.corrupt` called the same way (`corrupt_one`). Images under 32 px are upsampled
to 32 px (PIL bilinear) before corrupting and resized back after; every cell records it.
"""

from __future__ import annotations

from typing import Any

from coanalysis.results.corruption_names import MIN_SIDE, corruption_seed, library_version
from coanalysis.data.corruption.outcome import Corrupted, EvalImages, to_nchw, to_nhwc
from coanalysis.data.corruption.pool import corrupt_images, start_pool
from coanalysis.features.extraction import SubsetImages


class GeneratedSource:
    """imagecorruptions on the images of the evaluation subset (`ctx.images(n)`)."""

    kind = "imagecorruptions"

    def __init__(self, ctx: EvalImages, n: int | None, seed: int, workers: int):
        self.ctx, self.n, self.seed, self.workers = ctx, n, seed, workers

    def prepare(self) -> None:
        self.ctx.images(self.n)
        if self.workers > 1:
            start_pool(self.workers)

    def identity(self, corruption: str, severity: int, rows: tuple[int, int] | None = None) -> dict[str, Any]:
        ident = {"kind": "corrupted-images", "version": 1, "data": self.ctx.data.describe(), "n": self.n,
                 "corruption": corruption, "severity": severity, "seed": self.seed,
                 "generator": f"imagecorruptions-imaug {library_version()}", "min_side": MIN_SIDE}
        return ident if rows is None else {**ident, "rows": list(rows)}

    def produce(self, corruption: str, severity: int, rows: tuple[int, int] | None = None) -> Corrupted:
        """The cell's images (rows [start, end) of the subset only, when given: the same bytes as
        those rows of the whole cell, every image having its own seed)."""
        subset = self.ctx.images(self.n)
        if rows is not None:
            start, end = rows
            subset = SubsetImages(subset.images[start:end], subset.labels[start:end], subset.positions[start:end])
        seeds = [corruption_seed(self.seed, corruption, severity, int(p)) for p in subset.positions]
        out = corrupt_images(to_nhwc(subset.images), corruption, severity, seeds, self.workers)
        side = min(subset.images.shape[-2:])
        notes = {"upsampled_to": MIN_SIDE} if side < MIN_SIDE else {}
        return Corrupted(to_nchw(out), subset.labels.clone(), notes)
