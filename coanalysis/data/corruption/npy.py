"""Pre-rendered `.npy` sets: `<root>/<corruption>.npy` (5 severities stacked) and `<root>/labels.npy`
(CIFAR-10-C, CIFAR-100-C).

Rows are aligned with the evaluation split when it has as many images as one severity block, else
a seeded subset is used. Every array is checked before use (`check_images`, `check_labels`): uint8
images `(rows, S, S, 3)` or grey `(rows, S, S)` (float arrays are accepted only when every pixel
used is finite and in [0, 255], and are rounded, which the cell records), a row count that is a
whole number of severity blocks of at most 5, and integer labels of the evaluation classes. A bad
file is one line naming it and what was expected; a file with fewer severities than asked for
gives `Missing` cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from coanalysis.data.corruption.outcome import Corrupted, EvalImages, Missing, resize_images, seeded_subset, to_nchw
from coanalysis.models.trainer import UserError

IMAGES = "uint8 images of shape (rows, S, S, 3) or (rows, S, S)"


def check_images(path: Path, array: np.ndarray, block: int) -> None:
    """Refuse an images array whose dtype, rank, channels, image shape or row count is not a pre-rendered set's."""
    shape = "x".join(str(d) for d in array.shape)
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{path}: expected {IMAGES}, got dtype {array.dtype} ({shape})")
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise UserError(f"{path}: expected {IMAGES} (channels last), got shape {shape}")
    if array.shape[1] != array.shape[2] or array.shape[1] < 1:
        raise UserError(f"{path}: expected square images like the evaluation images, got {array.shape[1]}x"
                        f"{array.shape[2]} px ({shape})")
    rows = array.shape[0]
    if rows == 0 or rows % block or rows > 5 * block:
        raise UserError(f"{path}: expected 1 to 5 severity blocks of {block} rows, got {rows} rows")


def check_pixels(path: Path, pixels: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """uint8 pixels as they are; float pixels rounded to uint8 when all are finite and in [0, 255], else refused."""
    if pixels.dtype == np.uint8:
        return pixels, {}
    if not np.isfinite(pixels).all():
        raise UserError(f"{path}: expected uint8 pixels; this {pixels.dtype} array holds NaN or infinite values")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise UserError(f"{path}: expected pixels in [0, 255]; this {pixels.dtype} array holds values from "
                        f"{float(pixels.min()):g} to {float(pixels.max()):g}")
    return np.rint(pixels).astype(np.uint8), {"cast_from": str(pixels.dtype)}


def check_labels(path: Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer class labels in [0, num_classes), flattened to `(rows,)` int64."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: expected integer class labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"{path}: expected labels in 0..{num_classes - 1} (the evaluation classes), got values "
                        f"from {labels.min()} to {labels.max()}")
    return labels


class NpySource:
    """CIFAR-10-C / CIFAR-100-C: `<root>/<corruption>.npy` (5 severities stacked) and `<root>/labels.npy`."""

    kind = "npy"

    def __init__(self, ctx: EvalImages, root: Path, n: int | None):
        self.ctx, self.root, self.n = ctx, Path(root).expanduser().resolve(), n

    def prepare(self) -> None:
        self.ctx.images(self.n)

    def identity(self, corruption: str, severity: int) -> dict[str, Any]:
        return {"kind": "prerendered-npy", "root": str(self.root), "corruption": corruption, "severity": severity}

    def _labels(self) -> np.ndarray | None:
        path = self.root / "labels.npy"
        if not path.is_file():
            return None
        try:
            labels = np.asarray(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as e:
            raise UserError(f"{path} is not a readable labels file ({e}); fetch the set again") from None
        return check_labels(path, labels, self.ctx.data.info.num_classes)

    def produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        path = self.root / f"{corruption}.npy"
        if not path.is_file():
            return Missing(f"no file {path.name} in {self.root}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            return Missing(f"{path.name} could not be read ({e})")
        all_labels = self._labels()
        split_size = len(self.ctx.data.dataset)
        block = len(all_labels) // 5 if all_labels is not None and len(all_labels) % 5 == 0 else split_size
        check_images(path, array, block)
        if array.shape[0] < severity * block:
            return Missing(f"{path.name} holds {array.shape[0]} images, fewer than {severity} severities of {block}")
        notes: dict[str, Any] = {}
        if block == split_size:
            subset = self.ctx.images(self.n)
            rows = self.ctx.data.indices[subset.positions].numpy()
            labels = torch.from_numpy(all_labels[(severity - 1) * block + rows]) if all_labels is not None \
                else subset.labels.clone()
            mismatched = int((labels != subset.labels).sum())
            if mismatched > 0.01 * len(labels):
                raise UserError(f"labels.npy of {self.root} disagrees with the {self.ctx.data.info.name} "
                                f"{self.ctx.data.info.split} labels on {mismatched} of {len(labels)} images; "
                                "pass the --dataset this set was made from")
            notes["alignment"] = "rows of the evaluation subset"
            notes["label_mismatches"] = mismatched
        else:
            if all_labels is None:
                raise UserError(f"{self.root} has no labels.npy and its blocks of {block} images do not match "
                                f"the {split_size} images of the evaluation split")
            rows = seeded_subset(block, self.n or len(self.ctx.data), self.ctx.data.seed).numpy()
            labels = torch.from_numpy(all_labels[(severity - 1) * block + rows])
            notes["alignment"] = f"seeded subset (seed {self.ctx.data.seed}) of the set's {block} images"
        pixels, cast = check_pixels(path, np.asarray(array[(severity - 1) * block + rows]))
        notes.update(cast)
        if pixels.ndim == 3:  # grey
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        images = to_nchw(pixels)
        size = self.ctx.data.info.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            notes["resized_from"] = [list(images.shape[-2:])]
            notes["resized_to"] = size
            images = resize_images(images, size)
        return Corrupted(images, labels.long(), notes)
