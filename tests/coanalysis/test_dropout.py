"""Internal corruption of the local map: p = 0 and alpha = 0 are the clean accuracy exactly, and
each pooling keeps, zeroes, rescales or perturbs exactly what the protocol says."""

from __future__ import annotations

import pytest
import torch

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.dropout import (SINGLE, DropoutProtocol, channel_pooling, channel_std, kept_positions,
                                         noise_pooling, spatial_pooling)
from coanalysis.run.pipeline import run_analysis
from tests.coanalysis.probed import probed_context


def test_nothing_dropped_equals_clean_accuracy_and_cells_record_the_protocol(tiny_runs, tmp_path):
    session, ctx = probed_context(tiny_runs, "co-byol", tmp_path / "res")
    protocol = DropoutProtocol(spatial_ps=(0.0, 0.5, SINGLE), channel_ps=(0.0, 0.5), noise_alphas=(0.0, 1.0), masks=3)
    result = run_analysis(session, ctx, ANALYSES["dropout"], protocol)
    assert result.complete and len(result.cells) == 7
    for key in ("spatial p=0", "channel p=0", "noise alpha=0"):
        cell = result.cells[key]
        assert cell["accuracies"] == [ctx.clean_accuracy] * 3 and cell["mean"] == ctx.clean_accuracy
        assert cell["std"] == 0.0 and cell["n"] == 256
    c, h, w = ctx.local_maps(on_device=True).maps.shape[1:]
    single = result.cells[f"spatial p={SINGLE}"]
    assert single["kept_positions"] == 1 and single["p_value"] == 1 - 1 / (h * w) and single["positions"] == h * w
    assert result.cells["spatial p=0.5"]["kept_positions"] == h * w // 2
    half = result.cells["channel p=0.5"]
    assert half["dropped_channels"] == round(0.5 * c) and half["scale"] == 2.0 and len(half["accuracies"]) == 3
    assert result.cells["noise alpha=1"]["mean_channel_std"] > 0


def test_single_position_pooling_returns_one_local_vector():
    maps = torch.randn(6, 5, 3, 4)
    pooled = spatial_pooling(SINGLE, 0, 1)(maps, torch.arange(6))
    for b in range(6):
        vectors = maps[b].flatten(1).T
        assert any(torch.equal(pooled[b], v) for v in vectors)


def test_spatial_pooling_averages_exactly_the_kept_positions():
    b, h, w = 5, 3, 4
    maps = torch.randn(b, 3, h, w, dtype=torch.float64)
    maps[:, 0] = (2.0 ** torch.arange(h * w, dtype=torch.float64)).view(h, w)  # a bit per position
    positions = torch.arange(10, 10 + b)
    pooled = spatial_pooling(0.5, 0, 3)(maps, positions)
    keep = kept_positions(0.5, h * w)
    for row in range(b):
        code = int(round(float(pooled[row, 0]) * keep))
        kept = [i for i in range(h * w) if code >> i & 1]
        assert len(kept) == keep == 6
        assert torch.allclose(pooled[row, 1:], maps[row, 1:].flatten(1)[:, kept].mean(1))
    halves = torch.cat([spatial_pooling(0.5, 0, 3)(maps[:2], positions[:2]),
                        spatial_pooling(0.5, 0, 3)(maps[2:], positions[2:])])
    assert torch.equal(pooled, halves)  # per-image masks: batching does not matter
    assert not torch.equal(pooled, spatial_pooling(0.5, 0, 4)(maps, positions))  # another mask
    assert torch.equal(spatial_pooling(0.0, 0, 3)(maps, positions), maps.mean(dim=(2, 3)))


def test_channel_dropout_zeroes_round_p_c_channels_and_rescales():
    maps = torch.rand(4, 10, 2, 2) + 0.5
    pooled = channel_pooling(0.3, 0, 5)(maps, torch.arange(4))
    plain = maps.mean(dim=(2, 3))
    assert ((pooled == 0).sum(1) == 3).all()
    kept = pooled != 0
    assert torch.allclose(pooled[kept], plain[kept] / 0.7)


def test_feature_noise_has_alpha_times_the_channel_std():
    scales = torch.tensor([1.0, 2.0, 4.0])
    maps = torch.randn(800, 3, 4, 4) * scales[None, :, None, None]
    std = channel_std(maps)
    assert torch.allclose(std, maps.transpose(0, 1).reshape(3, -1).std(1), rtol=1e-4)
    noisy = noise_pooling(0.5, std, 0, 9)(maps, torch.arange(800))
    spread = (noisy - maps.mean(dim=(2, 3))).std(0)
    assert torch.allclose(spread, 0.5 * std / 4, rtol=0.1)  # mean of 16 positions: std / sqrt(16)
    assert torch.equal(noise_pooling(0.0, std, 0, 9)(maps, torch.arange(800)), maps.mean(dim=(2, 3)))


def test_kept_positions_rules():
    assert [kept_positions(p, 16) for p in (0.0, 0.25, 0.5, 0.75, 0.9, SINGLE)] == [16, 12, 8, 4, 2, 1]
    assert kept_positions(0.99, 4) == 1  # never zero positions


@pytest.mark.parametrize("key", ["spatial p=0.25", "channel p=0.9", "noise alpha=2", f"spatial p={SINGLE}"])
def test_default_protocol_lists_the_protocol_conditions(key):
    assert key in ANALYSES["dropout"].cells(DropoutProtocol())
