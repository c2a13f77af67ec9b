"""The corruptions and severities of the ImageNet-C protocol, and the seed of one image's corruption.

Torch-free: the analysis, the corruption sources and the report all read these names.
"""

from __future__ import annotations

import zlib
from typing import Sequence

from coanalysis.models.trainer_io import UserError

STANDARD = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
            "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
            "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = STANDARD + EXTRA
GROUPS = {"standard": STANDARD, "extra": EXTRA, "all": ALL, "noise": STANDARD[0:3], "blur": STANDARD[3:7],
          "weather": STANDARD[7:10], "digital": STANDARD[10:15]}
SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIDE = 32  # imagecorruptions refuses smaller images
SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")  # take seed=; the others draw from np.random
MAX_NAMED = 50  # undecodable files named per cell (all are counted)


def corruption_seed(seed: int, corruption: str, severity: int, position: int) -> int:
    """The seed of one image's corruption, in [0, 2**32) as numpy and numba require.

    Keyed by the corruption's name (never its list position) and the image's position in the
    evaluation subset, so it is the same whatever the batch, the worker or the other cells.
    """
    condition = zlib.crc32(f"{corruption}/{severity}".encode())
    mixed = (seed * 1_000_003 + condition * 100_003 + position * 7_919 + 12_345) % (2 ** 61 - 1)
    return int(mixed % (2 ** 32))


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """Corruption names, with group names (standard, extra, all, noise, blur, weather, digital) expanded."""
    out: list[str] = []
    for name in names:
        for c in GROUPS.get(name, (name,)):
            if c not in ALL:
                raise UserError(f"unknown corruption {c!r}; choose from: {', '.join(ALL)} "
                                f"(or the groups {', '.join(GROUPS)})")
            if c not in out:
                out.append(c)
    if not out:
        raise UserError("no corruption given")
    return tuple(out)


def library_version() -> str:
    """The installed imagecorruptions-imaug version (recorded in cache identities)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("imagecorruptions-imaug")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
