"""The ERF analysis's methods and mass levels, and the compact codecs of its stored maps and images.

Torch-free (numpy and PIL): the ERF analysis encodes with these, the ERF figures decode with them.
A map is stored scaled to max 1 as base64 float16 (row-major) with its scale; an image as base64 PNG.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

METHODS = ("gradient", "integrated-gradients", "smoothgrad")
MASSES = (0.2, 0.5, 0.9)


def encode_map(m: np.ndarray) -> dict[str, Any]:
    """A non-negative float32 map `(H, W)` scaled to max 1, as base64 float16 (row-major)."""
    peak = float(m.max())
    scaled = np.ascontiguousarray((m / peak if peak > 0 else m).astype(np.float16))
    return {"shape": list(scaled.shape), "scale": peak, "float16_b64": base64.b64encode(scaled.tobytes()).decode()}


def decode_map(data: dict[str, Any]) -> np.ndarray:
    """`encode_map`'s output -> float32 numpy array `(H, W)` scaled to max 1."""
    return np.frombuffer(base64.b64decode(data["float16_b64"]), dtype=np.float16).reshape(data["shape"]).astype(
        np.float32)


def encode_image(image: np.ndarray) -> str:
    """uint8 `(H, W, 3)` -> base64 PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def decode_image(data: str) -> np.ndarray:
    """base64 PNG -> uint8 numpy array `(H, W, 3)`."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
