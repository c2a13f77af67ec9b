"""Datasets by name: the `DATASETS` table and `load_dataset`.

Every source yields uint8 RGB images; see `co_ssl_train.data.datasets` for the two dataset
kinds. Missing files raise a `UserError` that names the ways to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from co_ssl_train.data import cifar, fashion_mnist, imagefolder, stl10, synthetic
from co_ssl_train.data.datasets import (AnyDataset, DatasetInfo, FolderDataset, ImageDataset,
                                        iterate_batches, resize_uint8)
from co_ssl_train.errors import UserError

__all__ = ["DATASETS", "AnyDataset", "DatasetInfo", "DatasetSpec", "FolderDataset", "ImageDataset",
           "get_spec", "iterate_batches", "load_dataset", "resize_uint8"]


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of `DATASETS`: how to load a named dataset and which splits it has."""

    load: Callable[..., AnyDataset]
    splits: tuple[str, ...]
    train_split: str  # the split SSL training and probe fitting use
    eval_split: str  # the split accuracies are reported on
    description: str
    for_users: bool = True  # False: tests only, never a default


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        fashion_mnist.load, ("train", "test"), "train", "test",
        "Fashion-MNIST, 28x28 grey resized to 32x32 RGB (Debian's dataset-fashion-mnist, --data-root, or --download)"),
    "cifar10": DatasetSpec(
        cifar.load_cifar10, ("train", "test"), "train", "test",
        "CIFAR-10, torchvision layout (cifar-10-batches-py) under --data-root, or --download"),
    "cifar100": DatasetSpec(
        cifar.load_cifar100, ("train", "test"), "train", "test",
        "CIFAR-100, torchvision layout (cifar-100-python) under --data-root, or --download"),
    "stl10": DatasetSpec(
        stl10.load, ("train", "test", "unlabeled", "train+unlabeled"), "train+unlabeled", "test",
        "STL-10 binaries (stl10_binary) under --data-root, or --download; 96x96"),
    "imagefolder": DatasetSpec(
        imagefolder.load, ("train", "val"), "train", "val",
        "class folders <root>/train/<class>/* and <root>/val/<class>/* (ImageNet, ImageNet-100, Tiny-ImageNet)"),
    "synthetic": DatasetSpec(
        synthetic.load, ("train", "test"), "train", "test",
        "procedural 32x32 shapes for tests only", for_users=False),
}


def get_spec(name: str) -> DatasetSpec:
    """The `DATASETS` entry for `name`; unknown names fail with the list of valid ones."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, split: str | None = None, *, root: str | Path | None = None,
                 download: bool = False, image_size: int | None = None) -> AnyDataset:
    """Load split `split` (default: the dataset's evaluation split) of dataset `name`.

    `root` is the folder that holds the files in torchvision's layout; `download` lets
    torchvision fetch them when there is network; `image_size` resizes in-memory sets and sets
    the decode size of folder sets.
    """
    spec = get_spec(name)
    split = spec.eval_split if split is None else split
    if split == "test" and "test" not in spec.splits and "val" in spec.splits:
        split = "val"
    if split not in spec.splits:
        raise UserError(f"dataset {name!r} has no split {split!r}; choose one of: {', '.join(spec.splits)}")
    root_path = Path(root).expanduser() if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise UserError(f"--data-root {root_path} is not a folder; pass the folder that holds the {name} files")
    if image_size is not None and image_size < 8:
        raise UserError(f"image size {image_size} is too small; use at least 8 px")
    return spec.load(split=split, root=root_path, download=download, image_size=image_size)
