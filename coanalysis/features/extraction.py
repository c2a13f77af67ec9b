"""Evaluation data, batched inference and the on-disk feature cache.

- `EvalData`: a seeded, fixed subset of one split of a dataset, iterated as uint8 batches;
  `SubsetImages`, the decoded images of such a subset (kept by `EvalContext.images`).
- `forward_global` / `forward_local`: inference in eval mode at the chosen precision
  (bf16 autocast and channels_last on GPU, fp32 on CPU).
- `extract_features`: global (pooled) features of an `EvalData`, cached on disk under a key of
  (checkpoint content hash and how it was loaded, dataset, split, transform, layer, n, seed,
  precision, and a hash of the subset's pixels or file list). A second run pays only the cache
  read (and that hash): no forward pass, no model on the device. Entries are written atomically
  (temporary file, fsync, rename); one that is stale (another identity), truncated, corrupt or
  malformed is ignored and rebuilt, never trusted. `cache_root()` is the co-ssl cache folder
  ($CO_SSL_CACHE, else ~/.cache/co-ssl), `default_feature_cache_dir()` its `features/`.

Device and precision resolution and the autocast context are the trainer's (`coanalysis.models.trainer`).
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

from coanalysis.models.trainer import (UNDECODABLE, AnyDataset, Encoder, UserError, autocast, iterate_batches,
                                write_bytes_atomic)


@dataclass
class EvalData:
    """A fixed subset of one split: `indices` into `dataset`, chosen by `seed` when `n` < split size."""

    dataset: AnyDataset
    indices: torch.Tensor
    seed: int
    requested_n: int | None
    skipped: set = field(default_factory=set)  # positions whose file did not decode
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

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

    def fingerprint(self) -> str:
        """A hash of what this subset holds, so cached features never outlive a change of the data:
        the uint8 pixels and labels of an in-memory set (which covers its resizing), the file list,
        labels and crop of a folder set (decoded on demand; the decoding is named in `describe()`)."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            samples = getattr(self.dataset, "samples", None)
            if samples is not None:
                digest.update(repr(getattr(self.dataset, "crop_fraction", None)).encode())
                for i in self.indices.tolist():
                    path, label = samples[i]
                    digest.update(f"{path}\t{label}\n".encode())
            else:
                digest.update(self.dataset.images[self.indices].contiguous().numpy().tobytes())
                digest.update(self.dataset.labels[self.indices].contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batches(self, batch_size: int, workers: int = 0,
                rows: tuple[int, int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """`(uint8 images (B, 3, H, W), labels (B,), positions (B,))`; undecodable files are dropped.

        `positions` index into this subset (0..len-1), so per-image seeds stay fixed whatever the
        batch size. `rows` (start, end) takes only those rows of the subset (start on a batch
        boundary keeps a single pass's batches).
        """
        start, end = rows if rows is not None else (0, len(self.indices))
        offset = start
        for images, labels in iterate_batches(self.dataset, batch_size, indices=self.indices[start:end],
                                              workers=workers):
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


@dataclass(frozen=True)
class SubsetImages:
    """uint8 images `(N, 3, H, W)` on the CPU, labels `(N,)`, positions in the evaluation subset `(N,)`."""

    images: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` -> float `(B, 3, H, W)` in [0, 1] on `device` (channels_last on GPU).

    On GPU the uint8 batch is pinned first so that its copy runs asynchronously and the host can
    prepare the next batch while the GPU computes.
    """
    if device.type == "cuda" and images.device.type == "cpu":
        images = images.pin_memory()
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _to_host(features: torch.Tensor) -> torch.Tensor:
    """Device features -> CPU, without waiting for the GPU (pinned buffer, asynchronous copy)."""
    if features.device.type != "cuda":
        return features
    out = torch.empty(features.shape, dtype=features.dtype, pin_memory=True)
    return out.copy_(features, non_blocking=True)


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


def cache_root() -> Path:
    """The co-ssl cache folder: $CO_SSL_CACHE, else ~/.cache/co-ssl."""
    return Path(os.environ.get("CO_SSL_CACHE", Path.home() / ".cache" / "co-ssl"))


def default_feature_cache_dir() -> Path:
    """`<co-ssl cache>/features`, where `FeatureCache` keeps its files unless told otherwise."""
    return cache_root() / "features"


class FeatureCache:
    """Tensor files `<dir>/<key>.safetensors`, keyed by a hash of an identity dict.

    The identity holds everything the tensors depend on (checkpoint hash, data, layer,
    precision, kind); it is stored inside the file and checked on read, so a stale, foreign or
    damaged entry is ignored (and rebuilt by the caller), never trusted.
    """

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else default_feature_cache_dir()

    @staticmethod
    def key(ident: dict) -> str:
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, ident: dict) -> Path:
        return self.directory / f"{self.key(ident)}.safetensors"

    def get(self, ident: dict) -> dict[str, torch.Tensor] | None:
        """The tensors stored for exactly `ident`, or None (absent, stale, truncated or corrupt)."""
        from safetensors import safe_open

        path = self.path(ident)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if json.loads((f.metadata() or {}).get("ident", "{}")) != json.loads(json.dumps(ident, sort_keys=True)):
                    return None
                return {name: f.get_tensor(name) for name in f.keys()}
        except Exception:  # a damaged entry is rebuilt, never fatal
            return None

    def put(self, ident: dict, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save as st_save

        blob = st_save({k: v.contiguous() for k, v in tensors.items()},
                       metadata={"ident": json.dumps(ident, sort_keys=True)})
        try:
            write_bytes_atomic(self.directory / f"{self.key(ident)}.safetensors", blob)
        except OSError:
            pass  # a read-only or full cache only costs recomputation


def feature_identity(content_hash: str, data: EvalData, layer: str, precision: str, kind: str = "global", *,
                     encoder: dict | None = None) -> dict:
    """What cached features of `data` depend on.

    `encoder` is how the file was loaded (`ModelSource.loading()`: format, branch, architecture,
    normalization); pass it whenever one file can give several encoders (a DINO teacher and
    student, a `--mean/--std` override), so that their features never share an entry.
    """
    ident = {"checkpoint": content_hash, **data.describe(), "content": data.fingerprint(), "layer": layer,
             "precision": precision, "kind": kind, "version": 1}
    if encoder is not None:
        ident["encoder"] = encoder
    return ident


def _valid_hit(hit: dict[str, torch.Tensor] | None, n: int) -> bool:
    """A cached entry that has the shape of global features of at most `n` images, all finite."""
    if hit is None or set(hit) - {"skipped"} != {"features", "labels"}:
        return False
    feats, labels = hit["features"], hit["labels"]
    return feats.ndim == 2 and feats.dtype == torch.float32 and labels.ndim == 1 and labels.dtype == torch.int64 \
        and feats.shape[0] == labels.shape[0] <= n and bool(torch.isfinite(feats).all())


def extract_features(encoder: Encoder, data: EvalData, *, device: torch.device, batch_size: int = 256,
                     precision: str = "fp32", layer: str | None = None, cache: FeatureCache | None = None,
                     progress: bool = False, workers: int = 0) -> Features:
    """Global features of every image of `data` (cached when `cache` is given and the encoder has a source)."""
    layer = layer or encoder.local_layer
    source = getattr(encoder, "source", None)
    ident = feature_identity(source.content_hash, data, layer, precision, encoder=source.loading()) \
        if source is not None else None
    if cache is not None and ident is not None:
        hit = cache.get(ident)
        if _valid_hit(hit, len(data)):
            if "skipped" in hit:  # the files that did not decode when the entry was made
                data.skipped.update(int(p) for p in hit["skipped"].tolist())
            return Features(hit["features"], hit["labels"], from_cache=True)
    from tqdm import tqdm

    encoder = encoder.to(device).eval()
    if device.type == "cuda":
        encoder = encoder.to(memory_format=torch.channels_last)
    chunks, labels = [], []
    with tqdm(total=len(data), disable=not progress, desc="features", unit="img", leave=False) as bar:
        for images, y, _ in data.batches(batch_size, workers):
            chunks.append(_to_host(forward_global(encoder, to_input(images, device), precision, layer)))
            labels.append(y)
            bar.update(len(y))
    skipped = data.skipped_files()
    if not chunks:
        raise UserError(f"no image of {data.info.name} {data.info.split} decoded: all {len(data)} files failed "
                        f"(e.g. {', '.join(skipped[:2])}); check the files under {data.info.source}")
    if skipped:
        print(f"note: {len(skipped)} of {len(data)} files of {data.info.name} {data.info.split} did not decode and "
              f"were skipped: {', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}", flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the copies to host above were asynchronous
    feats = Features(torch.cat(chunks).float().contiguous(), torch.cat(labels).long().contiguous())
    if not torch.isfinite(feats.features).all():
        raise UserError("the encoder produced NaN or infinite features; the checkpoint is broken "
                        "(retrain, or check its normalization)")
    if cache is not None and ident is not None:
        entry = {"features": feats.features, "labels": feats.labels}
        if data.skipped:
            entry["skipped"] = torch.tensor(sorted(data.skipped), dtype=torch.int64)
        cache.put(ident, entry)
    return feats
