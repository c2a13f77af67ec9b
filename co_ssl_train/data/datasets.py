"""Dataset types shared by every source, and `load_dataset`, which finds a source by name.

Two kinds of dataset exist:
- `ImageDataset` holds a whole split in memory as uint8 tensors `(N, 3, H, W)`, so the trainer
  can move it to the GPU once and augment there. Fashion-MNIST, CIFAR, STL-10 and the synthetic
  set are of this kind.
- `FolderDataset` decodes image files on demand (in DataLoader workers) into uint8 tensors of a
  fixed size. ImageNet-style class folders are of this kind.

Both yield `(uint8 image (3, H, W), int label)` per item and are iterated in batches with
`iterate_batches`. Images reach models as float RGB in [0, 1]; normalization lives in the encoder.
The table of named datasets is `co_ssl_train.data.DATASETS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from co_ssl_train.data.decode import decode_resize_crop
from co_ssl_train.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, recorded in checkpoints and results."""

    name: str
    split: str
    num_classes: int
    image_size: int
    source: str  # where the files were read from
    notes: str = ""  # preprocessing that is ours (e.g. "28x28 grey resized to 32x32 RGB")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class ImageDataset(torch.utils.data.Dataset):
    """A split held in memory: `images` uint8 `(N, 3, H, W)`, `labels` int64 `(N,)`."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], info: DatasetInfo):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
        if images.shape[0] == 0:
            raise UserError(f"dataset {info.name} split {info.split} is empty (read from {info.source})")
        self.images = images
        self.labels = labels.long()
        self.classes = tuple(classes)
        self.info = info

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "ImageDataset":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.info)


UNDECODABLE = -2  # label of a file that did not decode (its image is all zeros)


class FolderDataset(torch.utils.data.Dataset):
    """Image files decoded on demand into uint8 `(3, size, size)` tensors.

    `samples` is a list of (path, label). The transform is fixed (see `decode_resize_crop`): resize
    the shorter side to `round(size / crop_fraction)`, then centre-crop `size`. A file that does
    not decode yields a black image with label `UNDECODABLE`.
    """

    def __init__(self, samples: list[tuple[str, int]], classes: Sequence[str], info: DatasetInfo,
                 crop_fraction: float = 0.875):
        if not samples:
            raise UserError(f"dataset {info.name} split {info.split} has no images under {info.source}")
        self.samples = samples
        self.classes = tuple(classes)
        self.info = info
        self.crop_fraction = crop_fraction
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        image = decode_resize_crop(path, self.info.image_size, self.crop_fraction)
        if image is None:
            size = self.info.image_size
            return torch.zeros((3, size, size), dtype=torch.uint8), UNDECODABLE
        return image, label

    def subset(self, indices: torch.Tensor | Sequence[int]) -> "FolderDataset":
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        return FolderDataset([self.samples[i] for i in idx], self.classes, self.info, self.crop_fraction)

    def to_memory(self, workers: int = 0) -> ImageDataset:
        """Decode every file once into an `ImageDataset` (for sets that fit, e.g. Tiny-ImageNet)."""
        images, labels = [], []
        for x, y in iterate_batches(self, 256, workers=workers):
            images.append(x)
            labels.append(y)
        return ImageDataset(torch.cat(images), torch.cat(labels), self.classes, self.info)


AnyDataset = ImageDataset | FolderDataset


def iterate_batches(dataset: AnyDataset, batch_size: int, *, indices: torch.Tensor | None = None,
                    workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(uint8 images (B, 3, H, W), int64 labels (B,))` in order.

    In-memory sets are sliced directly; folder sets decode in `workers` DataLoader processes.
    """
    if indices is None:
        indices = torch.arange(len(dataset))
    if isinstance(dataset, ImageDataset):
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            yield dataset.images[idx], dataset.labels[idx]
        return
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False,
        num_workers=workers, persistent_workers=False, pin_memory=torch.cuda.is_available())
    yield from loader


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 `(N, 3, H, W)` images to `size` x `size` (bilinear, antialiased), in chunks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], 3, size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].float()
        resized = torch.nn.functional.interpolate(chunk, size=(size, size), mode="bilinear",
                                                  align_corners=False, antialias=True)
        out[start:start + 4096] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out
