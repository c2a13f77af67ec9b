"""Local feature maps of evaluation images, cached on disk like the global features.

`extract_local_maps` (through `EvalContext.local_maps(n, layer)`, the one way analyses get them)
returns the maps `L` of shape `(N, C, h, w)` of a seeded subset of N images of the context's
evaluation split, with their labels. The subset is
`EvalData.from_dataset(split, N, seed)` with the evaluation subset's own seed, so it is nested in
the evaluation subset (the first N of the same seeded permutation) and identified by
(dataset, split, N, seed). Maps are kept and cached as float16 (float32 when a value would
overflow float16), whether they were just computed or read back, so a re-run from the cache gives
the same numbers; statistics on them are computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coanalysis.features.extraction import EvalData, FeatureCache, autocast, feature_identity, forward_local, to_input
from coanalysis.models.trainer import UserError

FP16_MAX = 60000.0  # above this a map is kept in float32


@dataclass(frozen=True)
class LocalMaps:
    """Local maps `(N, C, h, w)` (float16 or float32), labels `(N,)` and dataset indices `(N,)` of the
    decodable images of `data`, in its order."""

    maps: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor  # index of each row in the dataset (per-image seeds use it)
    data: EvalData
    layer: str
    from_cache: bool = False
    positions: torch.Tensor | None = None  # rows' positions in `data` (the context's on-device maps only)
    readout: torch.Tensor | None = None  # a ViT's own global representation `(N, C')` (PROTOCOLS 13), float32

    @property
    def global_features(self) -> torch.Tensor:
        """`G`, float32 `(N, C)`: the mean over positions of L, or a ViT's readout (its CLS token, say)."""
        if self.readout is not None:
            return self.readout.float()
        return self.maps.mean(dim=(2, 3), dtype=torch.float32)


def resolve_layer(encoder, layer: str | None) -> str:
    """`layer`, or the encoder's local layer when None; an unknown stage name is a UserError."""
    layer = layer or encoder.local_layer
    channels = getattr(getattr(encoder, "backbone", None), "channels", None)
    if channels and layer not in channels:
        raise UserError(f"unknown layer {layer!r}; choose one of: {', '.join(channels)}")
    return layer


def subset(data: EvalData, n: int | None) -> EvalData:
    """The first `n` images of `data`'s seeded permutation of its split (`data` itself when n covers it)."""
    if n is None or n >= len(data):
        return data
    if n < 1:
        raise UserError(f"the number of images must be at least 1, got {n}")
    return EvalData.from_dataset(data.dataset, n, data.seed)


def _storage(maps: torch.Tensor) -> torch.Tensor:
    return maps.half() if maps.abs().max() <= FP16_MAX else maps


def extract_local_maps(encoder, data: EvalData, *, device: torch.device, batch_size: int, precision: str,
                       layer: str, cache: FeatureCache | None = None, progress: bool = False,
                       workers: int = 0) -> LocalMaps:
    """Local maps of every decodable image of `data` (cached under a `kind="local"` identity)."""
    source = getattr(encoder, "source", None)
    vit = getattr(encoder, "family", None) == "vit"
    needed = {"maps", "labels", "indices"} | ({"readout"} if vit else set())
    ident = feature_identity(source.content_hash, data, layer, precision, kind="local",
                             encoder=source.loading()) if source is not None and cache is not None else None
    if ident is not None:
        hit = cache.get(ident)
        if hit is not None and needed <= set(hit) and hit["maps"].ndim == 4 \
                and hit["maps"].shape[0] == hit["labels"].shape[0] == hit["indices"].shape[0] <= len(data):
            return LocalMaps(hit["maps"], hit["labels"], hit["indices"], data, layer, from_cache=True,
                             readout=hit.get("readout"))
    from tqdm import tqdm

    chunks, labels, indices, readouts = [], [], [], []
    with tqdm(total=len(data), disable=not progress, desc=f"local maps ({layer})", unit="img", leave=False) as bar:
        for images, y, positions in data.batches(batch_size, workers):
            if vit:  # the map and the readout from one pass
                with torch.no_grad(), autocast(device, precision):
                    local, glob = encoder.forward_local_global(to_input(images, device), layer)
                chunks.append(local.float().cpu())
                readouts.append(glob.float().cpu())
            else:
                chunks.append(forward_local(encoder, to_input(images, device), precision, layer).cpu())
            labels.append(y)
            indices.append(data.indices[positions])
            bar.update(len(y))
    if not chunks:
        raise UserError("no image of the evaluation data could be decoded")
    maps = torch.cat(chunks)
    if not torch.isfinite(maps).all():
        raise UserError("the encoder produced NaN or infinite features; the checkpoint is broken "
                        "(retrain, or check its normalization)")
    result = LocalMaps(_storage(maps), torch.cat(labels), torch.cat(indices), data, layer,
                       readout=torch.cat(readouts) if vit else None)
    if ident is not None:
        cache.put(ident, {"maps": result.maps, "labels": result.labels, "indices": result.indices,
                          **({"readout": result.readout} if vit else {})})
    return result
