"""Fashion-MNIST from its idx files, delivered as 32x32 RGB uint8.

Where the files are looked for, in order:
1. `--data-root`, in torchvision's layout (`<root>/FashionMNIST/raw/`) or flat (`<root>/`);
2. Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/`);
3. torchvision's download, when `download=True` (into `<root>` or the co-ssl cache).

The idx files are read directly (gzip or not): Debian's copies have other checksums than the ones
torchvision checks. The 28x28 grey images are resized bilinearly to 32x32 and repeated over three
channels (our choice, recorded in `DatasetInfo.notes`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from co_ssl_train.data.datasets import DatasetInfo, ImageDataset, resize_uint8
from co_ssl_train.data.paths import default_data_dir
from co_ssl_train.errors import UserError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NATIVE_SIZE = 32
HOW_TO_GET = ("install Debian's package (apt-get install dataset-fashion-mnist), pass --data-root DIR "
              "holding FashionMNIST/raw/*-ubyte[.gz], or add --download when online")


def read_idx(path: Path) -> np.ndarray:
    """Read one idx file (`.gz` or raw) into a uint8 array, checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {e}; the file is damaged, fetch it again") from None
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an idx file of unsigned bytes; fetch it again")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise UserError(f"{path} is truncated or damaged ({len(data) - header} bytes of data, "
                        f"header says {expected}); fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_files(split: str, root: Path | None) -> tuple[Path, Path] | None:
    """The (images, labels) idx files of `split`, or None where none of the places has them."""
    candidates = []
    if root is not None:
        candidates += [root / "FashionMNIST" / "raw", root, root / "fashion-mnist"]
    else:
        candidates += [DEBIAN_DIR, default_data_dir() / "FashionMNIST" / "raw"]
    for folder in candidates:
        images, labels = (_find(folder, stem) for stem in FILES[split])
        if images is not None and labels is not None:
            return images, labels
    return None


def _download(root: Path | None) -> None:
    import torchvision

    target = root if root is not None else default_data_dir()
    try:
        torchvision.datasets.FashionMNIST(str(target), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(target), train=False, download=True)
    except Exception as e:  # network errors come in many types
        raise UserError(f"downloading Fashion-MNIST into {target} failed ({type(e).__name__}: {e}); "
                        f"{HOW_TO_GET.replace(', or add --download when online', '')}") from None


def load(split: str, root: Path | None, download: bool, image_size: int | None) -> ImageDataset:
    files = find_files(split, root)
    if files is None and download:
        _download(root)
        files = find_files(split, root)
    if files is None:
        where = f"under {root}" if root is not None else f"in {DEBIAN_DIR}"
        raise UserError(f"Fashion-MNIST {split} files not found {where}; {HOW_TO_GET}")
    images_path, labels_path = files
    grey = read_idx(images_path)
    labels = read_idx(labels_path)
    if grey.ndim != 3 or labels.ndim != 1 or grey.shape[0] != labels.shape[0]:
        raise UserError(f"{images_path} and {labels_path} do not match ({grey.shape} images, "
                        f"{labels.shape} labels); fetch them again")
    if labels.size and labels.max() >= len(CLASSES):
        raise UserError(f"{labels_path} has label {labels.max()}; Fashion-MNIST has 10 classes")
    size = image_size or NATIVE_SIZE
    rgb = torch.from_numpy(grey.copy()).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    rgb = resize_uint8(rgb, size)
    info = DatasetInfo(name="fashion-mnist", split=split, num_classes=len(CLASSES), image_size=size,
                       source=str(images_path.parent),
                       notes=f"28x28 grey resized bilinearly to {size}x{size} and repeated to RGB (ours)")
    return ImageDataset(rgb, torch.from_numpy(labels.astype(np.int64)), CLASSES, info)
