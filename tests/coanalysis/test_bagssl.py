"""Whole versus bag of parts: an encoder linear in its input gives cosine 1 for tiling patches."""

from __future__ import annotations

import json

import pytest
import torch

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.bagssl import (BagSSLProtocol, cells, default_patch_sizes, extract_patches, grid_offsets,
                                        patch_offsets, run_cell)
from coanalysis.models.trainer import UserError
from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
from coanalysis.results.store import Result
from tests.coanalysis.analysis_encoders import PixelLinear, context, wrap


@pytest.mark.parametrize("feed", ["native", "resize"])
def test_linear_encoder_whole_equals_mean_of_tiling_parts(feed):
    ctx = context(wrap(PixelLinear(), "pixel-linear"))
    protocol = BagSSLProtocol(patch_sizes=(8, 16), feed=feed, n_images=64, bootstrap=50)
    for key in cells(protocol):
        cell = run_cell(ctx, protocol, key)
        assert cell["cos_whole_bag"]["mean"] == pytest.approx(1.0, abs=1e-5)
        assert cell["cos_whole_bag"]["quantiles"]["5"] == pytest.approx(1.0, abs=1e-5)
        assert cell["bag_accuracy"] == cell["global_accuracy"]
        assert cell["n"] == 64
        # the bag's interval is the whole image's (same per-image answers), and brackets it
        assert cell["intervals"]["bag"] == cell["intervals"]["global"]
        for which in ("bag", "patch", "global"):
            lo, hi = cell["intervals"][which]
            assert lo <= cell[f"{which}_accuracy"] <= hi
    # single parts differ from the whole, and overlapping (non-tiling) random patches break the identity
    assert cell["cos_whole_patch"]["mean"] < 0.999
    random = run_cell(ctx, BagSSLProtocol(patch_sizes=(8,), sampling="random", patches_per_image=5, feed=feed,
                                          n_images=64, bootstrap=50), "patch=8")
    assert random["patches_per_image"] == 5 and random["cos_whole_bag"]["mean"] < 0.9999


def test_grid_offsets_and_default_sizes():
    assert grid_offsets(32, 8) == [0, 8, 16, 24]
    assert grid_offsets(32, 24) == [0, 8]
    assert grid_offsets(32, 32) == [0]
    assert grid_offsets(224, 96) == [0, 64, 128]
    assert grid_offsets(30, 16) == [0, 14]
    assert default_patch_sizes(32) == (8, 16, 24, 32)
    assert default_patch_sizes(224) == (32, 64, 96)
    assert default_patch_sizes(20) == (8, 16)


def test_patches_are_the_image_crops_and_random_positions_are_per_image():
    x = torch.rand(3, 3, 12, 12)
    offsets = torch.tensor([[[0, 0], [4, 6]], [[2, 3], [8, 8]], [[1, 1], [0, 8]]])
    patches = extract_patches(x, offsets, 4)
    assert patches.shape == (3, 2, 3, 4, 4)
    for b in range(3):
        for k in range(2):
            r, c = offsets[b, k].tolist()
            assert torch.equal(patches[b, k], x[b, :, r:r + 4, c:c + 4])
    protocol = BagSSLProtocol(sampling="random", patches_per_image=6)
    indices = torch.tensor([5, 17, 99])
    both = patch_offsets(protocol, 32, 8, indices)
    assert torch.equal(both[1:], patch_offsets(protocol, 32, 8, indices[1:]))  # batch-independent
    assert both.min() >= 0 and both.max() <= 24


def test_bad_protocols_are_refused():
    with pytest.raises(UserError, match="sampling"):
        BagSSLProtocol(sampling="dense")
    with pytest.raises(UserError, match="feed"):
        BagSSLProtocol(feed="pad")
    with pytest.raises(UserError, match="larger than"):
        run_cell(context(wrap(PixelLinear(), "pixel-linear")), BagSSLProtocol(patch_sizes=(64,)), "patch=64")


def test_pipeline_cells_resume_and_round_trip(tiny_runs, tmp_path):
    session = Session(out=tmp_path / "res", progress=False, batch_size=64)
    ctx = make_context(session, open_model(session, str(tiny_runs["co-byol"]), "co"))
    first = run_analysis(session, ctx, ANALYSES["bagssl"], BagSSLProtocol(patch_sizes=(16, 32), n_images=48,
                                                                          bootstrap=50))
    whole = first.cells["patch=32"]  # one 32 px patch of a 32 px image is the image itself
    assert whole["cos_whole_bag"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert whole["bag_accuracy"] == whole["global_accuracy"] and whole["patches_per_image"] == 1
    assert first.cells["patch=16"]["patches_per_image"] == 4 and first.cells["patch=16"]["n"] == 48
    assert Result.from_json(json.loads(session.store.path("co", "bagssl").read_text())) == first
    more = run_analysis(session, ctx, ANALYSES["bagssl"], BagSSLProtocol(patch_sizes=(8,), n_images=48,
                                                                         bootstrap=50))
    assert list(more.cells) == ["patch=16", "patch=32", "patch=8"] and more.complete
    assert more.cells["patch=16"] == first.cells["patch=16"]
