"""Evaluation data, batched inference and the on-disk feature cache.

- `EvalData`: a seeded, fixed subset of one split of a dataset, iterated as uint8 batches.
- `forward_global` / `forward_local`: inference in eval mode at the chosen precision
  (bf16 autocast and channels_last on GPU, fp32 on CPU).
- `extract_features`: global (pooled) features of an `EvalData`, cached on disk under a key of
  (checkpoint content hash, dataset, split, transform, layer, n, seed, precision). The cache is
  written atomically and a stale or corrupt entry is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from coanalysis.loading import UNDECODABLE, AnyDataset, Encoder, UserError, iterate_batches, write_bytes_atomic


@dataclass
class EvalData:
    """A fixed subset of one split: `indices` into `dataset`, chosen by `seed` when `n` < split size."""

    dataset: AnyDataset
    indices: torch.Tensor
    seed: int
    requested_n: int | None
    skipped: set = field(default_factory=set)  # positions whose file did not decode

    @classmethod
    def from_dataset(cls, dataset: AnyDataset, n: int | None = None, seed: int = 0) -> "EvalData":
        total = len(dataset)
        if n is not None and n < 1:
            raise UserError(f"--n must be at least 1, got {n}")
        if n is None or n >= total:
            indices = torch.arange(total)
        else:
            g = torch.Generator().manual_seed(seed)
            indices = torch.randperm(total, generator=g)[:n].sort().values
        return cls(dataset, indices, seed, n)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def info(self):
        return self.dataset.info

    def describe(self) -> dict:
        """The JSON identity of this data: dataset, split, size, transform, subset seed."""
        info = self.dataset.info
        return {"dataset": info.name, "split": info.split, "n": len(self), "subset_seed": self.seed,
                "image_size": info.image_size, "source": info.source, "preprocessing": info.notes}

    def batches(self, batch_size: int, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """`(uint8 images (B, 3, H, W), labels (B,), positions (B,))`; undecodable files are dropped.

        `positions` index into this subset (0..len-1), so per-image seeds stay fixed whatever the
        batch size.
        """
        offset = 0
        for images, labels in iterate_batches(self.dataset, batch_size, indices=self.indices, workers=workers):
            positions = torch.arange(offset, offset + len(labels))
            offset += len(labels)
            keep = labels != UNDECODABLE
            if not keep.all():
                self.skipped.update(positions[~keep].tolist())
                images, labels, positions = images[keep], labels[keep], positions[keep]
            if len(labels):
                yield images, labels, positions

    def skipped_files(self) -> list[str]:
        """Files of this subset that did not decode in the last pass (folder datasets only)."""
        samples = getattr(self.dataset, "samples", None)
        if samples is None:
            return []
        return [samples[int(self.indices[p])][0] for p in sorted(self.skipped)]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp32"):
        raise UserError(f"unknown precision {precision!r}; use auto, bf16 or fp32")
    return precision


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` -> float `(B, 3, H, W)` in [0, 1] on `device` (channels_last on GPU)."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@torch.no_grad()
def forward_global(encoder: Encoder, x: torch.Tensor, precision: str, layer: str | None = None) -> torch.Tensor:
    """Float images in [0, 1] -> float32 global features `(B, C)` (eval mode, no gradient)."""
    with autocast(x.device, precision):
        return encoder.forward_global(x, layer).float()


@torch.no_grad()
def forward_local(encoder: Encoder, x: torch.Tensor, precision: str, layer: str | None = None) -> torch.Tensor:
    """Float images in [0, 1] -> float32 local maps `(B, C, h, w)` (eval mode, no gradient)."""
    with autocast(x.device, precision):
        return encoder.forward_local(x, layer).float()


@dataclass(frozen=True)
class Features:
    """Global features `(N, C)` float32 and labels `(N,)` of an `EvalData`, in its order."""

    features: torch.Tensor
    labels: torch.Tensor
    from_cache: bool = False


def default_cache_dir() -> Path:
    return Path(os.environ.get("CO_SSL_CACHE", Path.home() / ".cache" / "co-ssl")) / "features"


class FeatureCache:
    """Feature files `<dir>/<key>.safetensors`; the key hashes everything the features depend on."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    @staticmethod
    def key(content_hash: str, data: EvalData, layer: str, precision: str) -> tuple[str, dict]:
        ident = {"checkpoint": content_hash, **data.describe(), "layer": layer, "precision": precision,
                 "kind": "global", "version": 1}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32], ident

    def load(self, key: str, ident: dict) -> Features | None:
        from safetensors import safe_open

        path = self.directory / f"{key}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if json.loads((f.metadata() or {}).get("ident", "{}")) != ident:
                    return None
                features, labels = f.get_tensor("features"), f.get_tensor("labels")
        except Exception:  # a damaged entry is rebuilt, never fatal
            return None
        if features.ndim != 2 or features.shape[0] != labels.shape[0]:
            return None
        return Features(features, labels, from_cache=True)

    def store(self, key: str, ident: dict, feats: Features) -> None:
        from safetensors.torch import save as st_save

        blob = st_save({"features": feats.features.contiguous(), "labels": feats.labels.contiguous()},
                       metadata={"ident": json.dumps(ident, sort_keys=True)})
        try:
            write_bytes_atomic(self.directory / f"{key}.safetensors", blob)
        except OSError:
            pass  # a read-only or full cache only costs recomputation


def extract_features(encoder: Encoder, data: EvalData, *, device: torch.device, batch_size: int = 256,
                     precision: str = "fp32", layer: str | None = None, cache: FeatureCache | None = None,
                     progress: bool = False, workers: int = 0) -> Features:
    """Global features of every image of `data` (cached when `cache` is given and the encoder has a source)."""
    layer = layer or encoder.local_layer
    source = getattr(encoder, "source", None)
    key = ident = None
    if cache is not None and source is not None:
        key, ident = cache.key(source.content_hash, data, layer, precision)
        hit = cache.load(key, ident)
        if hit is not None:
            return hit
    from tqdm import tqdm

    encoder = encoder.to(device).eval()
    chunks, labels = [], []
    with tqdm(total=len(data), disable=not progress, desc="features", unit="img", leave=False) as bar:
        for images, y, _ in data.batches(batch_size, workers):
            chunks.append(forward_global(encoder, to_input(images, device), precision, layer).cpu())
            labels.append(y)
            bar.update(len(y))
    feats = Features(torch.cat(chunks), torch.cat(labels))
    if not torch.isfinite(feats.features).all():
        raise UserError("the encoder produced NaN or infinite features; the checkpoint is broken "
                        "(retrain, or check its normalization)")
    if cache is not None and key is not None:
        cache.store(key, ident, feats)
    return feats
