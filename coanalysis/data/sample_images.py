"""Images to draw effective receptive fields on: the real photos that ship with scikit-image and
foolbox, or the user's own files and folders.

`"default"` is 14 photos from scikit-image's data folder (`chelsea.png`, `astronaut.png`, ...)
followed by foolbox's 20 ImageNet, 20 CIFAR-10 and 20 CIFAR-100 sample images (its package `data`
folder, the files `foolbox.utils.samples` reads), in that order. The files are located with
`importlib` and decoded here with PIL; neither library is imported or called. Missing package
files are left out.

Every image is decoded into RGB (grey, CMYK and palette images are converted, an alpha channel
is dropped), its centre square cropped and resized to `size` x `size` (PIL bicubic, antialiased
when shrinking). A file that does not decode is skipped and named.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from coanalysis.models.trainer import UserError

SKIMAGE_PHOTOS = ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg", "camera.png", "motorcycle_left.png",
                  "coins.png", "moon.png", "ihc.png", "retina.jpg", "hubble_deep_field.jpg", "grass.png",
                  "gravel.png", "brick.png")
FOOLBOX_SETS = ("imagenet", "cifar10", "cifar100")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
DEFAULT = "default"


def package_data(package: str) -> Path | None:
    """The `data` folder inside an installed package, without importing it (None when absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    return folder if folder.is_dir() else None


def default_files() -> list[tuple[str, Path]]:
    """(name, path) of the default photos that are installed, in the documented order."""
    out = []
    skimage = package_data("skimage")
    if skimage is not None:
        out += [(f"skimage:{f}", skimage / f) for f in SKIMAGE_PHOTOS if (skimage / f).is_file()]
    foolbox = package_data("foolbox")
    if foolbox is not None:
        for name in FOOLBOX_SETS:
            for i in range(20):
                hits = sorted(foolbox.glob(f"{name}_{i:02d}_*"))
                if hits:
                    out.append((f"foolbox:{hits[0].name}", hits[0]))
    return out


def expand(specs: Sequence[str]) -> list[tuple[str, Path]]:
    """(name, path) of every image that `specs` designates: "default", files, or folders (searched
    recursively for image extensions, sorted)."""
    out: list[tuple[str, Path]] = []
    for spec in specs:
        if spec == DEFAULT:
            found = default_files()
            if not found:
                raise UserError("the default ERF images come with scikit-image and foolbox, and neither is installed; "
                                "pass your own with --images FILES_OR_DIR")
            out += found
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not files:
                raise UserError(f"no image files ({', '.join(sorted(EXTENSIONS))}) under {path}")
            out += [(str(p), p) for p in files]
        elif path.is_file():
            out.append((str(path), path))
        else:
            raise UserError(f"image {path} does not exist; pass image files or a folder with --images")
    return out


def decode_square(path: Path, size: int) -> torch.Tensor | None:
    """uint8 `(3, size, size)`: RGB, centre square crop, resized; None when the file does not decode."""
    from PIL import Image

    from coanalysis.models.trainer import open_rgb_or_none

    img = open_rgb_or_none(str(path))
    if img is None:
        return None
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


@dataclass
class ImageSet:
    """Decoded images `(N, 3, size, size)` uint8 with their names, and the files that did not decode."""

    images: torch.Tensor
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    specs: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"specs": list(self.specs), "n": len(self.names), "image_size": int(self.images.shape[-1]),
                "preprocessing": "RGB (grey/CMYK/palette converted, alpha dropped), centre square crop, "
                                 "bicubic resize", "skipped_files": list(self.skipped)}


def load_images(specs: Sequence[str], size: int, limit: int | None = None) -> ImageSet:
    """The first `limit` decodable images of `specs` at `size` px (all when `limit` is None)."""
    if size < 1:
        raise UserError(f"image size must be at least 1 px, got {size}")
    images, names, skipped = [], [], []
    for name, path in expand(specs):
        if limit is not None and len(images) >= limit:
            break
        image = decode_square(path, size)
        if image is None:
            skipped.append(name)
        else:
            images.append(image)
            names.append(name)
    if not images:
        raise UserError(f"none of the {len(skipped)} image files could be decoded ({', '.join(skipped[:3])}"
                        f"{', ...' if len(skipped) > 3 else ''}); pass JPEG or PNG images")
    return ImageSet(torch.stack(images), names, skipped, tuple(specs))
