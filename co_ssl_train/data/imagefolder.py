"""Class-folder datasets: `<root>/train/<class>/...` and `<root>/val/<class>/...`.

Covers ImageNet, ImageNet-100 and Tiny-ImageNet (whose `val/images` + `val_annotations.txt`
layout is read too). Classes are the sorted folder names of `train/` (of the split itself when
there is no `train/`), so every split shares one label mapping. Files are decoded with PIL into
RGB (grey, CMYK and palette images are converted), the shorter side resized to
`round(size / crop_fraction)` and the centre `size` x `size` cropped. A file that does not decode
gives a black image with label `UNDECODABLE` (see `FolderDataset`), so one bad file never stops a
long job; consumers drop and count those.
"""

from __future__ import annotations

from pathlib import Path

from co_ssl_train.data.datasets import DatasetInfo, FolderDataset
from co_ssl_train.errors import UserError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"}
DEFAULT_SIZE = 224


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def split_folder(root: Path, split: str) -> Path:
    """The folder of `split` (`val` falls back to `test/` when there is no `val/`)."""
    if split == "val" and not (root / split).is_dir() and (root / "test").is_dir():
        return root / "test"
    return root / split


def scan(root: Path, split: str) -> tuple[list[tuple[str, int]], list[str]]:
    """(samples, classes) of one split; raises a UserError naming the expected layout."""
    split_dir = split_folder(root, split)
    if not split_dir.is_dir():
        raise UserError(f"{split_dir} not found; imagefolder expects {root}/train/<class>/*.jpg and "
                        f"{root}/val/<class>/*.jpg")
    class_root = root / "train" if (root / "train").is_dir() else split_dir
    classes = sorted(d.name for d in class_root.iterdir() if d.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    samples: list[tuple[str, int]] = []
    annotations = split_dir / "val_annotations.txt"  # Tiny-ImageNet
    if annotations.is_file() and (split_dir / "images").is_dir():
        for line in annotations.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1] in index:
                samples.append((str(split_dir / "images" / parts[0]), index[parts[1]]))
    else:
        for c in classes:
            if (split_dir / c).is_dir():
                samples += [(str(p), index[c]) for p in _files(split_dir / c)]
    if not classes or not samples:
        raise UserError(f"no images found under {split_dir}; imagefolder expects <class>/ folders holding "
                        f"{', '.join(sorted(EXTENSIONS))} files")
    return samples, classes


def load(split: str, root: Path | None, download: bool, image_size: int | None) -> FolderDataset:
    if root is None:
        raise UserError("imagefolder needs --data-root DIR with DIR/train/<class>/ and DIR/val/<class>/")
    samples, classes = scan(root, split)
    size = image_size or DEFAULT_SIZE
    used = split_folder(root, split)  # the split named in results and messages is the folder read
    info = DatasetInfo(name="imagefolder", split=used.name, num_classes=len(classes), image_size=size,
                       source=str(used),
                       notes=f"shorter side resized to {round(size / 0.875)}, centre crop {size}")
    return FolderDataset(samples, classes, info)
