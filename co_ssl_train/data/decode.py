"""Decoding one image file into the uint8 `(3, size, size)` tensor every dataset layer uses.

`open_rgb` is the one way co-ssl opens an image file: PIL decodes it, the EXIF orientation is
applied (a phone photo stored sideways is turned upright), and it is converted to RGB (grey, CMYK
and palette images too). A file larger than PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`)
is refused, not decoded, with a note naming it. `decode_resize_crop` resizes the shorter side to
`round(size / crop_fraction)` and crops the centre `size` x `size`. A file that does not decode
gives None; the folder datasets turn that into a black image labelled `UNDECODABLE`, and their
consumers drop, count and name those files.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

DECODE_ERRORS = (OSError, ValueError, SyntaxError)  # what PIL raises for a file that is not an image it reads


class RefusedImage(ValueError):
    """An image file refused without decoding it (a decompression bomb)."""


def open_rgb(path: str) -> Any:
    """The RGB `PIL.Image` of `path`, EXIF orientation applied; raises one of `DECODE_ERRORS`
    (`RefusedImage` for a decompression bomb)."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)
                return img.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise RefusedImage(f"note: {path} refused: {e}") from None


def open_rgb_or_none(path: str) -> Any:
    """`open_rgb(path)`, or None when the file does not decode; a refused bomb is also said on
    stdout (the caller counts and names skipped files)."""
    try:
        return open_rgb(path)
    except RefusedImage as e:
        print(str(e), flush=True)
        return None
    except DECODE_ERRORS:
        return None


def decode_resize_crop(path: str, size: int, crop_fraction: float = 0.875) -> torch.Tensor | None:
    """Decode `path` into uint8 `(3, size, size)`: resize shorter side, centre crop; None if it fails."""
    from PIL import Image

    img = open_rgb_or_none(path)
    if img is None:
        return None
    w, h = img.size
    short = max(size, round(size / crop_fraction))
    scale = short / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR, reducing_gap=None)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
