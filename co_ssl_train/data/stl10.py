"""STL-10 from its binary files (`stl10_binary/{train,test,unlabeled}_X.bin`, `*_y.bin`).

Images are 96x96, stored column-major; labels are 1..10 on disk and 0..9 here. The unlabeled
split gets label -1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from co_ssl_train.data.datasets import DatasetInfo, ImageDataset, resize_uint8
from co_ssl_train.data.paths import default_data_dir
from co_ssl_train.errors import UserError

CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
SIDE = 96


def _folder(root: Path | None, download: bool) -> Path:
    base = root if root is not None else default_data_dir()
    for folder in (base / "stl10_binary", base):
        if (folder / "test_X.bin").is_file():
            return folder
    if download:
        import torchvision

        try:
            torchvision.datasets.STL10(str(base), split="train", download=True)
        except Exception as e:  # network errors come in many types
            raise UserError(f"downloading STL-10 into {base} failed ({type(e).__name__}: {e}); "
                            "put stl10_binary/ under --data-root instead") from None
        return base / "stl10_binary"
    raise UserError(f"STL-10 files not found under {base}; pass --data-root DIR holding stl10_binary/, "
                    "or add --download when online")


def _read_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    x_path = folder / f"{part}_X.bin"
    if not x_path.is_file():
        raise UserError(f"STL-10 file {x_path} missing; fetch the full set again")
    raw = np.fromfile(x_path, dtype=np.uint8)
    if raw.size % (3 * SIDE * SIDE):
        raise UserError(f"{x_path} is truncated ({raw.size} bytes); fetch it again")
    images = raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2)
    if part == "unlabeled":
        return images, np.full(images.shape[0], -1, dtype=np.int64)
    y_path = folder / f"{part}_y.bin"
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1 if y_path.is_file() else None
    if labels is None or labels.shape[0] != images.shape[0]:
        raise UserError(f"STL-10 labels {y_path} missing or not matching {x_path}; fetch them again")
    return images, labels


def load(split: str, root: Path | None, download: bool, image_size: int | None) -> ImageDataset:
    folder = _folder(root, download)
    parts = ["train", "unlabeled"] if split == "train+unlabeled" else [split]
    arrays = [_read_part(folder, p) for p in parts]
    images = torch.from_numpy(np.ascontiguousarray(np.concatenate([a for a, _ in arrays])))
    labels = torch.from_numpy(np.concatenate([b for _, b in arrays]))
    size = image_size or SIDE
    info = DatasetInfo(name="stl10", split=split, num_classes=len(CLASSES), image_size=size, source=str(folder))
    return ImageDataset(resize_uint8(images, size), labels, CLASSES, info)
