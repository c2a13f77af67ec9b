"""CIFAR-10 and CIFAR-100 from torchvision's layout (`cifar-10-batches-py`, `cifar-100-python`).

The batch files are Python pickles. They are read with an unpickler that accepts only the numpy
array types these files contain, so a file that tries to run code is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from co_ssl_train.data.datasets import DatasetInfo, ImageDataset, resize_uint8
from co_ssl_train.data.paths import default_data_dir
from co_ssl_train.errors import UserError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict:
    """One CIFAR batch file as a dict with str keys, refusing anything but arrays and lists."""
    try:
        with open(path, "rb") as f:
            raw = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as e:
        raise UserError(f"{path} is not a valid CIFAR batch file ({e}); fetch it again") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} is not a CIFAR batch file; fetch it again")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _folder(root: Path | None, sub: str, marker: str, download: bool, cls_name: str) -> Path:
    """The folder holding the batch files: `<root>/<sub>` or `<root>` itself."""
    base = root if root is not None else default_data_dir()
    for folder in (base / sub, base):
        if (folder / marker).is_file():
            return folder
    if download:
        import torchvision

        try:
            getattr(torchvision.datasets, cls_name)(str(base), train=True, download=True)
        except Exception as e:  # network errors come in many types
            raise UserError(f"downloading {cls_name} into {base} failed ({type(e).__name__}: {e}); "
                            f"put {sub}/ under --data-root instead") from None
        return base / sub
    raise UserError(f"{cls_name} files not found under {base}; pass --data-root DIR holding {sub}/ "
                    f"(torchvision's layout), or add --download when online")


def _to_dataset(data: np.ndarray, labels: list[int], classes: tuple[str, ...], name: str, split: str,
                source: Path, image_size: int | None) -> ImageDataset:
    images = torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    size = image_size or 32
    images = resize_uint8(images, size)
    info = DatasetInfo(name=name, split=split, num_classes=len(classes), image_size=size, source=str(source))
    return ImageDataset(images, torch.tensor(labels, dtype=torch.long), classes, info)


def load_cifar10(split: str, root: Path | None, download: bool, image_size: int | None) -> ImageDataset:
    folder = _folder(root, "cifar-10-batches-py", "test_batch", download, "CIFAR10")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10 files {', '.join(missing)} missing in {folder}; fetch the full set again")
    batches = [read_batch(folder / n) for n in names]
    data = np.concatenate([b["data"] for b in batches])
    labels = [int(v) for b in batches for v in b["labels"]]
    return _to_dataset(data, labels, CIFAR10_CLASSES, "cifar10", split, folder, image_size)


def load_cifar100(split: str, root: Path | None, download: bool, image_size: int | None) -> ImageDataset:
    folder = _folder(root, "cifar-100-python", "test", download, "CIFAR100")
    path = folder / split
    if not path.is_file():
        raise UserError(f"CIFAR-100 file {path} missing; fetch the full set again")
    batch = read_batch(path)
    classes = tuple(f"class{i}" for i in range(100))
    if (folder / "meta").is_file():
        classes = tuple(read_batch(folder / "meta")["fine_label_names"])
    labels = [int(v) for v in batch["fine_labels"]]
    return _to_dataset(batch["data"], labels, classes, "cifar100", split, folder, image_size)
