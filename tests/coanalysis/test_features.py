"""The feature cache: a hit runs no forward pass; stale, corrupt or foreign entries are rebuilt."""

from __future__ import annotations

import pytest
import torch

from coanalysis import load_encoder
from coanalysis.features.extraction import EvalData, FeatureCache, extract_features, feature_identity
from coanalysis.models.trainer import load_dataset


@pytest.fixture
def setup(tiny_runs, tmp_path):
    encoder = load_encoder(tiny_runs["byol"])
    calls = []
    encoder.backbone.conv1.register_forward_hook(lambda *_: calls.append(1))
    data = EvalData.from_dataset(load_dataset("synthetic", "test"), n=64, seed=3)
    return encoder, data, FeatureCache(tmp_path / "cache"), calls


def _extract(encoder, data, cache):
    return extract_features(encoder, data, device=torch.device("cpu"), batch_size=32, cache=cache)


def test_a_cache_hit_runs_no_forward_pass(setup):
    encoder, data, cache, calls = setup
    first = _extract(encoder, data, cache)
    assert not first.from_cache and len(calls) == 2  # two batches of 32
    second = _extract(encoder, data, cache)
    assert second.from_cache and len(calls) == 2
    torch.testing.assert_close(second.features, first.features, rtol=0, atol=0)
    assert torch.equal(second.labels, first.labels) and first.features.shape == (64, encoder.num_features)
    assert not list(cache.directory.glob(".*.tmp"))  # written through a temporary file, renamed


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong shape", "nan"])
def test_a_damaged_entry_is_ignored_and_rebuilt(setup, damage):
    from safetensors.torch import save as st_save

    encoder, data, cache, calls = setup
    first = _extract(encoder, data, cache)
    source = encoder.source
    ident = feature_identity(source.content_hash, data, encoder.local_layer, "fp32", encoder=source.loading())
    path = cache.path(ident)
    assert path.is_file()
    meta = {"ident": __import__("json").dumps(ident, sort_keys=True)}
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong shape":
        path.write_bytes(st_save({"features": torch.zeros(64), "labels": torch.zeros(64, dtype=torch.long)}, meta))
    else:
        path.write_bytes(st_save({"features": torch.full((64, encoder.num_features), float("nan")),
                                  "labels": first.labels}, meta))
    rebuilt = _extract(encoder, data, cache)
    assert not rebuilt.from_cache and len(calls) == 4
    torch.testing.assert_close(rebuilt.features, first.features, rtol=0, atol=0)
    assert _extract(encoder, data, cache).from_cache and len(calls) == 4  # the rebuilt entry is good


def test_an_entry_of_another_identity_is_never_trusted(setup):
    from safetensors.torch import save as st_save

    encoder, data, cache, calls = setup
    first = _extract(encoder, data, cache)
    source = encoder.source
    ident = feature_identity(source.content_hash, data, encoder.local_layer, "fp32", encoder=source.loading())
    stale = dict(ident, checkpoint="0" * 64)  # same file name, identity inside says otherwise
    cache.path(ident).write_bytes(st_save({"features": first.features + 1, "labels": first.labels},
                                          {"ident": __import__("json").dumps(stale, sort_keys=True)}))
    again = _extract(encoder, data, cache)
    assert not again.from_cache
    torch.testing.assert_close(again.features, first.features, rtol=0, atol=0)


def test_the_key_covers_data_layer_and_how_the_file_was_loaded(setup, tiny_runs):
    encoder, data, cache, calls = setup
    _extract(encoder, data, cache)
    other_subset = EvalData.from_dataset(load_dataset("synthetic", "test"), n=64, seed=4)
    assert not _extract(encoder, other_subset, cache).from_cache
    assert not extract_features(encoder, data, device=torch.device("cpu"), batch_size=32, cache=cache,
                                layer="layer3").from_cache
    renormalized = load_encoder(tiny_runs["byol"], normalization=([0.5] * 3, [0.25] * 3))
    assert not _extract(renormalized, data, cache).from_cache  # same file, another encoder
    assert len(list(cache.directory.glob("*.safetensors"))) == 4


def test_an_unwritable_cache_costs_only_recomputation(setup, tmp_path):
    encoder, data, _, calls = setup
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    feats = _extract(encoder, data, FeatureCache(blocked / "cache"))
    assert feats.features.shape[0] == 64 and not feats.from_cache


def test_changed_data_under_the_same_name_is_recomputed(setup):
    """Same dataset name, split, n and seed, other pixels: the entry is not reused."""
    from coanalysis.models.trainer import ImageDataset

    encoder, data, cache, calls = setup
    first = _extract(encoder, data, cache)
    base = data.dataset
    changed = ImageDataset(255 - base.images, base.labels, base.classes, base.info)
    again = _extract(encoder, EvalData.from_dataset(changed, n=64, seed=3), cache)
    assert not again.from_cache and not torch.equal(again.features, first.features)
