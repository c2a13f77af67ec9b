"""The probe's features extracted over the torchrun ranks, one run of whole batches per rank.

Before rank 0 fits the probe (`probe_fitting.shared_probe`), every rank extracts the global features of
a contiguous run of whole batches of the training (and evaluation) subset and caches it as a shard
entry in the feature cache. Rank 0 then joins the shards, in order, into the entry a single process
would have written, and `extract_features` reads it back. The shards start on batch boundaries, so
every image goes through the same batch as in one process, and the features are the same numbers.
A shard rank 0 cannot read (a cache folder that is not shared between nodes) it extracts itself.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import torch

from coanalysis.features.extraction import EvalData, _valid_hit, extract_features, feature_identity
from coanalysis.distributed.image_split import batch_rows
from coanalysis.probes.linear import LinearProbe


def _shard(data: EvalData, start: int, end: int) -> EvalData:
    return EvalData(data.dataset, data.indices[start:end], data.seed, None)


def extract_over_ranks(session, encoder, datasets: list[EvalData], needed: bool) -> None:
    """Leave the features of each of `datasets` in the feature cache, extracted by every rank.
    `needed` is rank 0's word (the same on every rank): False when they are cached or not needed."""
    shards, cache = session.shards, session.cache
    if shards.world == 1 or cache is None or not needed:
        return
    source = encoder.source

    def extract(data: EvalData) -> dict[str, torch.Tensor]:
        feats = extract_features(encoder, data, device=session.device, batch_size=session.batch_size,
                                 precision=session.precision, workers=session.workers)
        return {"features": feats.features, "labels": feats.labels}

    def ident(data: EvalData, rank: int | None = None) -> dict:
        whole = feature_identity(source.content_hash, data, encoder.local_layer, session.precision,
                                 encoder=source.loading())
        if rank is None:
            return whole
        start, end = batch_rows(len(data), session.batch_size, rank, shards.world)
        return {**whole, "shard": [start, end], "batch_size": session.batch_size}

    for data in datasets:
        start, end = batch_rows(len(data), session.batch_size, shards.rank, shards.world)
        if end > start:
            cache.put(ident(data, shards.rank), extract(_shard(data, start, end)))
    shards.meet()
    if not shards.is_main:
        return
    for data in datasets:
        parts = []
        for rank in range(shards.world):
            start, end = batch_rows(len(data), session.batch_size, rank, shards.world)
            if end > start:
                hit = cache.get(ident(data, rank))
                parts.append(hit if _valid_hit(hit, end - start) else extract(_shard(data, start, end)))
        cache.put(ident(data), {k: torch.cat([p[k] for p in parts]) for k in ("features", "labels")})


def features_needed(session, encoder, datasets: list[EvalData]) -> bytes:
    """b"1" when some of `datasets` has no cached features (run on rank 0, sent to the others)."""
    if session.cache is None:
        return b"0"
    source = encoder.source
    for data in datasets:
        ident = feature_identity(source.content_hash, data, encoder.local_layer, session.precision,
                                 encoder=source.loading())
        if not _valid_hit(session.cache.get(ident), len(data)):
            return b"1"
    return b"0"


def probe_from_main(shards, fit: Callable[[], tuple[LinearProbe, dict[str, Any], float]],
                    device) -> tuple[LinearProbe, dict[str, Any], float]:
    """`fit()` (probe, identity, accuracy) run by rank 0 alone and sent to every rank as safetensors
    bytes, the identity and accuracy in their metadata."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    def send() -> bytes:
        probe, identity, accuracy = fit()
        tensors = {k: v.detach().cpu().contiguous() for k, v in probe.state_dict().items()}
        return st_save(tensors, metadata={"identity": json.dumps(identity), "accuracy": repr(accuracy)})

    blob = shards.share(send)
    tensors = st_load(blob)
    # the metadata is in the safetensors header: an 8-byte little-endian length, then JSON
    header = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    probe = LinearProbe(tensors["mean"].shape[0], tensors["linear.weight"].shape[0])
    probe.load_state_dict(tensors)
    return probe.to(device).eval(), json.loads(header["identity"]), float(header["accuracy"])
