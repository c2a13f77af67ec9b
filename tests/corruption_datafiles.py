"""Writers of small pre-rendered corruption sets in their real layouts, for tests.

Pixel values encode what a reader must return, so a test can check it got the right file:
- folders (ImageNet-C / Tiny-ImageNet-C): file i of a class in severity s is the constant colour
  `folder_colour(s, i)`, saved as RGB PNG, grey PNG, palette PNG or CMYK JPEG;
- npy (CIFAR-10-C / CIFAR-100-C): row r of severity s is the constant `npy_value(s, r)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

MODES = ("RGB", "L", "P", "CMYK")


def folder_colour(severity: int, index: int) -> tuple[int, int, int]:
    v = 30 * severity + 7 * index
    return (v, v, v)  # grey, so grey and palette files hold it exactly


def write_imagenet_c(root: Path, files: dict[str, list[str]], corruptions: Sequence[str],
                     severities: Sequence[int], size: int = 32, group: str | None = None,
                     broken: tuple[str, str, str] | None = None) -> None:
    """`<root>[/<group>]/<corruption>/<severity>/<class>/<file name>` for each class's `files`.

    File i of a class is saved in mode `MODES[i % 4]` (RGB, grey, palette, CMYK JPEG) with the
    colour `folder_colour(severity, i)`. `broken` = (corruption, class, file name): that file holds
    bytes that do not decode.
    """
    from PIL import Image

    base = root / group if group else root
    for c in corruptions:
        for s in severities:
            for cls, names in files.items():
                folder = base / c / str(s) / cls
                folder.mkdir(parents=True, exist_ok=True)
                for i, name in enumerate(names):
                    img = Image.new("RGB", (size, size), folder_colour(s, i))
                    mode = MODES[i % len(MODES)]
                    if mode == "CMYK":
                        img.convert("CMYK").save(folder / name, format="JPEG", quality=100)
                    elif mode == "P":  # an adaptive palette holds the colour exactly (no dithering)
                        img.convert("P", palette=Image.ADAPTIVE).save(folder / name, format="PNG")
                    else:
                        img.convert(mode).save(folder / name, format="PNG")
    if broken is not None:
        c, cls, name = broken
        for s in severities:
            (base / c / str(s) / cls / name).write_bytes(b"\x89PNG but not really an image")


def npy_value(severity: int, row: int) -> int:
    return (40 * severity + row) % 256


def write_cifar_c(root: Path, labels: np.ndarray, corruptions: Sequence[str], severities: int = 5,
                  side: int = 32, grey: Sequence[str] = ()) -> None:
    """`<root>/<corruption>.npy` of shape `(severities * N, side, side, 3)` uint8 (or `(…, side, side)`
    for the corruptions in `grey`) and `<root>/labels.npy` (the N labels tiled over 5 severities,
    as CIFAR-10-C ships them even when a file holds fewer severities)."""
    root.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    np.save(root / "labels.npy", np.tile(np.asarray(labels, dtype=np.uint8), 5))
    for c in corruptions:
        values = np.array([npy_value(s, r) for s in range(1, severities + 1) for r in range(n)], dtype=np.uint8)
        shape = (len(values), side, side) if c in grey else (len(values), side, side, 3)
        array = np.broadcast_to(values.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
        np.save(root / f"{c}.npy", array)
