"""Writers of small dataset files in the real on-disk layouts, for tests."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    """An idx file of unsigned bytes (magic 0x08, ndim), as Fashion-MNIST ships them."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_fashion_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """torchvision's layout: <root>/FashionMNIST/raw/*-ubyte.gz; image i is constant 10 * (i % 20)."""
    raw = root / "FashionMNIST" / "raw"
    arrays = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = np.stack([np.full((28, 28), 10 * (i % 20), np.uint8) for i in range(n)])
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[split] = images
    return arrays


def write_cifar10(root: Path, n_per_batch: int = 4) -> np.ndarray:
    """torchvision's layout: <root>/cifar-10-batches-py/{data_batch_1..5,test_batch}; rows are CHW."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    test = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3 * 32 * 32), dtype=np.uint8)
        batch = {b"data": data, b"labels": list(rng.integers(0, 10, n_per_batch).tolist()),
                 b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        test = data if name == "test_batch" else test
    return test


def write_stl10(root: Path, n: int = 3) -> np.ndarray:
    """<root>/stl10_binary/{train,test}_{X,y}.bin, images stored column-major as STL-10 does."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
    for part in ("train", "test"):
        images.transpose(0, 1, 3, 2).tofile(folder / f"{part}_X.bin")
        np.arange(1, n + 1, dtype=np.uint8).tofile(folder / f"{part}_y.bin")
    return images


def write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3,
                       size: tuple[int, int] = (40, 30)) -> None:
    """<root>/{train,val}/<class>/*.png with one grey, one palette and one CMYK image per class."""
    from PIL import Image

    for split in ("train", "val"):
        for k, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value = 40 * k + 10 * i
                img = Image.new("RGB", size, (value, 255 - value, 128))
                if i == 1:
                    img = img.convert("L")
                elif i == 2:
                    img = img.convert("P")
                img.save(d / f"{i}.png")
            Image.new("RGB", size, (value, 0, 0)).convert("CMYK").save(d / "cmyk.jpg")
