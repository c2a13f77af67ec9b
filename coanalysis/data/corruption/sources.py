"""Which corruption source a protocol names, and the layout of a pre-rendered set on disk."""

from __future__ import annotations

from pathlib import Path

from coanalysis.data.corruption.folders import FolderSource
from coanalysis.data.corruption.generated import GeneratedSource
from coanalysis.results.corruption_names import ALL, STANDARD
from coanalysis.data.corruption.npy import NpySource
from coanalysis.data.corruption.outcome import EvalImages
from coanalysis.models.trainer import UserError

Source = GeneratedSource | FolderSource | NpySource


def detect_layout(root: Path) -> str:
    """'npy' (CIFAR-10-C / CIFAR-100-C) or 'folders' (ImageNet-C / Tiny-ImageNet-C) for a pre-rendered set."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"--corruptions-from {root} is not a folder; pass the folder holding the corruption "
                        "folders (ImageNet-C) or .npy files (CIFAR-10-C)")
    if any((root / f"{c}.npy").is_file() for c in ALL):
        return "npy"
    bases = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    if any((b / c).is_dir() for b in bases for c in ALL):
        return "folders"
    raise UserError(f"{root} holds no pre-rendered corruptions: expected <corruption>/<severity>/<class>/<file> "
                    f"folders (ImageNet-C, Tiny-ImageNet-C) or <corruption>.npy files (CIFAR-10-C), with names "
                    f"such as {', '.join(STANDARD[:3])}")


def make_source(ctx: EvalImages, source: str, root: str | None, n: int | None, seed: int, workers: int) -> Source:
    if source == "imagecorruptions":
        return GeneratedSource(ctx, n, seed, workers)
    if root is None:
        raise UserError(f"corruption source {source!r} needs a folder (--corruptions-from DIR)")
    if source == "folders":
        return FolderSource(ctx, Path(root), n, workers)
    if source == "npy":
        return NpySource(ctx, Path(root), n)
    raise UserError(f"unknown corruption source {source!r}; use imagecorruptions, folders or npy")
