"""Decoding one image file into the uint8 `(3, size, size)` tensor every dataset layer uses.

PIL decodes into RGB (grey, CMYK and palette images are converted), the shorter side is resized
to `round(size / crop_fraction)` and the centre `size` x `size` is cropped. A file that does not
decode gives None; the folder datasets turn that into a black image labelled `UNDECODABLE`.
"""

from __future__ import annotations

import numpy as np
import torch


def decode_resize_crop(path: str, size: int, crop_fraction: float = 0.875) -> torch.Tensor | None:
    """Decode `path` into uint8 `(3, size, size)`: resize shorter side, centre crop; None if it fails."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            short = max(size, round(size / crop_fraction))
            scale = short / min(w, h)
            img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR,
                             reducing_gap=None)
            w, h = img.size
            left, top = (w - size) // 2, (h - size) // 2
            img = img.crop((left, top, left + size, top + size))
            return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
    except (OSError, ValueError, SyntaxError):
        return None
