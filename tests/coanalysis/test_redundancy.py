"""Redundancy of local representations: known answers, closed forms against loops, resumable cells."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.redundancy import (RedundancyProtocol, bootstrap_pearson, cells, centre_index, null_maps,
                                            pair_similarities, pairs_correlation, pearson, run_cell, unit_locals,
                                            within_image_similarities)
from coanalysis.models.trainer import UserError
from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
from coanalysis.results.store import Result
from tests.coanalysis.analysis_encoders import (BroadcastBackbone, ClassTokenViT, RandomLocalBackbone, context,
                                               noise_images, wrap)

SMALL = RedundancyProtocol(n_images=256, n_pairs=4000, bootstrap=200)


def _all_cells(ctx, protocol):
    return {key: run_cell(ctx, protocol, key) for key in cells(protocol)}


def test_identical_local_vectors_give_r_one_and_single_vector_probe_equal_to_global():
    ctx = context(wrap(BroadcastBackbone(), "broadcast"))
    out = _all_cells(ctx, SMALL)
    assert out["pairs"]["pearson_r"] == pytest.approx(1.0, abs=1e-9)
    assert out["pairs"]["ci95"][0] == pytest.approx(1.0, abs=1e-9)
    assert out["similarity"]["intra_image"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert out["similarity"]["local_to_global"]["mean"] == pytest.approx(1.0, abs=1e-6)
    for key in ("part=centre", "part=random"):
        assert out[key]["accuracy"] == out[key]["global_accuracy"]
        assert out[key]["n"] == 256
    assert out["part=random"]["std"] == 0.0
    # the null (other images' locals at each position) is far below: r - r_null is large
    assert out["pairs"]["r_null"] < 0.5 and out["pairs"]["map_size"] == [4, 4]


@pytest.fixture(scope="module")
def random_ctx():
    return context(wrap(RandomLocalBackbone(channels=16, side=32), "random-locals"), data=noise_images(1500))


@pytest.fixture(scope="module")
def fitted(tiny_runs, tmp_path_factory):
    """A results folder where the probe of the tiny co-byol run is already fitted (tests copy it)."""
    out = tmp_path_factory.mktemp("redundancy")
    session = Session(out=out / "res", progress=False, batch_size=64, cache_dir=out / "cache")
    make_context(session, open_model(session, str(tiny_runs["co-byol"]), "co"))
    return out / "res"


def _session(fitted, tmp_path, **kw) -> Session:
    shutil.copytree(fitted, tmp_path / "res")
    return Session(out=tmp_path / "res", progress=False, cache_dir=tmp_path / "cache", **kw)


@pytest.mark.parametrize("positions", ["random", "aligned"])
def test_independent_random_local_vectors_give_r_near_zero(positions, random_ctx):
    # G is the mean of the locals, so r cannot be exactly 0: with S sampled pairs among K = 1024
    # positions the shared terms give r ~ sqrt(S) / K = 0.004; the sampling noise is ~ 1/sqrt(N)
    ctx = random_ctx
    protocol = RedundancyProtocol(n_images=1500, n_pairs=20000, positions=positions, bootstrap=200)
    pairs = run_cell(ctx, protocol, "pairs")
    lo, hi = pairs["ci95"]
    assert abs(pairs["pearson_r"]) < 0.08 and lo < 0 < hi and lo < pairs["pearson_r"] < hi
    sim = run_cell(ctx, protocol, "similarity")
    assert abs(sim["intra_image"]["mean"]) < 0.01
    assert sim["n_images"] == 1500 and len(pairs["points"]["g"]) == protocol.scatter_points


@pytest.mark.parametrize("side", [2, 4, 7])
def test_independent_locals_sit_at_the_chance_level(side):
    # G is the mean of the K = side^2 locals, so r is not 0 for independent vectors: with S
    # position pairs drawn with replacement among K^2, r = sqrt(S / (S + K^2 - 1)) -- 0.72 on 2x2,
    # 0.24 on 4x4, 0.081 on 7x7 (the issue quotes 0.71, 0.24, 0.075) -- and r_null measures it
    g = torch.Generator().manual_seed(side)
    maps = torch.randn(1000, 128, side, side, generator=g)
    protocol = RedundancyProtocol(n_images=1000, n_pairs=10000)
    r = pairs_correlation(maps, protocol, g)["r"]
    r_null = pairs_correlation(null_maps(maps, g), protocol, g)["r"]
    k2 = side ** 4
    assert r == pytest.approx((16 / (16 + k2 - 1)) ** 0.5, abs=0.03)
    assert r == pytest.approx({2: 0.71, 4: 0.24, 7: 0.075}[side], abs=0.03)
    assert r - r_null == pytest.approx(0.0, abs=0.04)


def test_independent_noise_encoder_has_r_at_its_null(random_ctx):
    pairs = run_cell(random_ctx, RedundancyProtocol(n_images=1500, n_pairs=20000, bootstrap=200), "pairs")
    assert pairs["r_minus_null"] == pytest.approx(0.0, abs=0.03)
    lo, hi = pairs["r_null_ci95"]
    assert lo < pairs["pearson_r"] < hi


def test_cls_readout_independent_of_the_patches_sits_at_its_null_of_zero():
    # G is the CLS token, not the mean of the locals: with no relation between them r is about 0 on
    # a 4x4 map, and so is r_null (each image keeps its CLS; its locals come from other images),
    # where a mean readout's chance level on the same maps is 0.24 (see the test above)
    ctx = context(ClassTokenViT("independent"), data=noise_images(1500))
    protocol = RedundancyProtocol(n_images=1500, n_pairs=20000, bootstrap=200)
    pairs = run_cell(ctx, protocol, "pairs")
    assert pairs["global"] == "cls" and "keeps its own CLS" in pairs["null"] and pairs["map_size"] == [4, 4]
    assert abs(pairs["pearson_r"]) < 0.05 and abs(pairs["r_null"]) < 0.05
    assert pairs["r_minus_null"] == pytest.approx(0.0, abs=0.05)
    lo, hi = pairs["r_null_ci95"]
    assert lo < pairs["pearson_r"] < hi
    lm = ctx.local_maps(1500)
    assert pairs_correlation(null_maps(lm.maps, torch.Generator().manual_seed(0)), protocol,
                             torch.Generator().manual_seed(1))["r"] == pytest.approx(0.24, abs=0.03)
    sim = run_cell(ctx, protocol, "similarity")
    assert sim["global"] == "cls" and abs(sim["local_to_global"]["mean"]) < 0.01
    assert abs(sim["local_to_global_null"]) < 0.01


def test_vit_avg_readout_is_recomputed_in_the_null_as_a_mean():
    # G = the mean of the patch tokens: the chance level is the mean readout's, 0.24 on 4x4 (not 0)
    ctx = context(ClassTokenViT("independent", readout="avg"), data=noise_images(1000))
    pairs = run_cell(ctx, RedundancyProtocol(n_images=1000, n_pairs=10000, bootstrap=100), "pairs")
    assert pairs["global"] == "avg" and "avg readout of them" in pairs["null"]
    assert pairs["pearson_r"] == pytest.approx(0.24, abs=0.04) and pairs["r_null"] == pytest.approx(0.24, abs=0.04)


def test_patch_tokens_equal_to_the_cls_give_r_one_against_a_null_near_zero():
    ctx = context(ClassTokenViT("cls"), data=noise_images(512))
    pairs = run_cell(ctx, RedundancyProtocol(n_images=512, n_pairs=5000, bootstrap=100), "pairs")
    assert pairs["pearson_r"] == pytest.approx(1.0, abs=1e-6) and pairs["ci95"][0] == pytest.approx(1.0, abs=1e-6)
    assert abs(pairs["r_null"]) < 0.08 and pairs["r_minus_null"] > 0.9
    sim = run_cell(ctx, RedundancyProtocol(n_images=512, bootstrap=100), "similarity")
    assert sim["local_to_global"]["mean"] == pytest.approx(1.0, abs=1e-3) and abs(sim["local_to_global_null"]) < 0.05


def test_null_maps_take_each_position_from_another_image():
    maps = torch.arange(5.0)[:, None, None, None].expand(5, 3, 2, 2).contiguous()  # image i holds the value i
    null = null_maps(maps, torch.Generator().manual_seed(0))
    assert null.shape == maps.shape
    assert (null[:, 0] != torch.arange(5.0)[:, None, None]).all()  # never the image's own vector
    assert (null == null[:, :1]).all()  # a whole vector is moved, all channels together


def test_closed_forms_match_explicit_loops():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(5, 7, 3, 2, generator=g).relu()
    maps[0, :, 0, 0] = 0  # a zero vector has cosine 0 with everything
    units = unit_locals(maps)
    glob = maps.mean((2, 3))
    intra, to_global = within_image_similarities(units, glob)
    vecs = maps.flatten(2).transpose(1, 2)  # (N, K, C)
    for n in range(5):
        sims = [F.cosine_similarity(vecs[n, p], vecs[n, q], dim=0, eps=1e-12)
                for p in range(6) for q in range(6) if p != q]
        assert intra[n] == pytest.approx(float(torch.stack(sims).mean()), abs=1e-6)
        to_g = [F.cosine_similarity(vecs[n, p], glob[n], dim=0, eps=1e-12) for p in range(6)]
        assert to_global[n] == pytest.approx(float(torch.stack(to_g).mean()), abs=1e-6)
    i, j = torch.tensor([0, 1, 4]), torch.tensor([2, 0, 3])
    p, q = torch.tensor([[0, 5], [1, 1], [2, 3]]), torch.tensor([[4, 0], [1, 2], [5, 5]])
    gs, ls = pair_similarities(units, glob, i, j, p, q)
    for k in range(3):
        assert gs[k] == pytest.approx(float(F.cosine_similarity(glob[i[k]], glob[j[k]], dim=0)), abs=1e-6)
        expect = torch.stack([F.cosine_similarity(vecs[i[k], p[k, s]], vecs[j[k], q[k, s]], dim=0, eps=1e-12)
                              for s in range(2)]).mean()
        assert ls[k] == pytest.approx(float(expect), abs=1e-6)


def test_pearson_and_bootstrap():
    x = torch.arange(50, dtype=torch.float64)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, torch.ones(50)) is None
    g = torch.Generator().manual_seed(0)
    y = x + 20 * torch.randn(50, generator=g, dtype=torch.float64)
    r = pearson(x, y)
    lo, hi = bootstrap_pearson(x, y, 500, 0)
    assert lo < r < hi and 0 < hi - lo < 0.6
    assert bootstrap_pearson(x, y, 500, 0) == (lo, hi)  # seeded
    # resampling images: pairs (k, k + 1) over 51 images
    i, j = torch.arange(50), torch.arange(1, 51)
    lo_i, hi_i = bootstrap_pearson(x, y, 500, 0, pairs=(i, j), n_images=51)
    assert lo_i < r < hi_i
    assert bootstrap_pearson(x, 2 * x, 100, 0, pairs=(i, j), n_images=51) == pytest.approx((1.0, 1.0))


def test_centre_index_rounds_halves_up():
    assert [centre_index(s) for s in (1, 2, 3, 4, 7)] == [0, 1, 1, 2, 3]


def test_bad_protocols_are_refused():
    with pytest.raises(UserError, match="positions"):
        RedundancyProtocol(positions="diagonal")
    with pytest.raises(UserError, match="at least"):
        RedundancyProtocol(n_pairs=0)


def test_pipeline_resumes_round_trips_and_reuses_the_local_cache(tiny_runs, fitted, tmp_path):
    protocol = RedundancyProtocol(n_images=128, n_pairs=2000, bootstrap=100)
    session = _session(fitted, tmp_path, batch_size=64)
    ctx = make_context(session, open_model(session, str(tiny_runs["co-byol"]), "co"))
    first = run_analysis(session, ctx, ANALYSES["redundancy"], protocol)
    assert first.complete and list(first.cells) == list(cells(protocol))
    assert first.cells["pairs"]["n_images"] == 128 and first.cells["pairs"]["map_size"] == [4, 4]
    stored = Result.from_json(json.loads(session.store.path("co", "redundancy").read_text()))
    assert stored == first
    # a fresh session reads the local maps back from the cache and gets the same numbers
    (tmp_path / "res" / "co" / "redundancy.json").unlink()
    again_session = Session(out=tmp_path / "res", progress=False, batch_size=32, cache_dir=tmp_path / "cache")
    ctx2 = make_context(again_session, open_model(again_session, str(tiny_runs["co-byol"]), "co"))
    again = run_analysis(again_session, ctx2, ANALYSES["redundancy"], protocol)
    local = ctx2.local_maps(protocol.n_images, protocol.layer)
    assert local.from_cache
    assert {k: {f: v for f, v in c.items() if f != "wall_time_s"} for k, c in again.cells.items()} == \
        {k: {f: v for f, v in c.items() if f != "wall_time_s"} for k, c in first.cells.items()}
    # the images are nested in the evaluation subset
    assert set(local.indices.tolist()) <= set(ctx2.data.indices.tolist())


def test_another_layer_has_no_single_vector_probe(tiny_runs, fitted, tmp_path):
    session = _session(fitted, tmp_path, batch_size=64)
    ctx = make_context(session, open_model(session, str(tiny_runs["co-byol"]), "co"))
    protocol = RedundancyProtocol(n_images=64, n_pairs=500, bootstrap=50, layer="layer3")
    result = run_analysis(session, ctx, ANALYSES["redundancy"], protocol)
    assert result.cells["pairs"]["map_size"] == [8, 8] and result.cells["pairs"]["layer"] == "layer3"
    assert result.cells["part=centre"]["accuracy"] is None and "layer4" in result.cells["part=centre"]["note"]
    with pytest.raises(UserError, match="unknown layer"):
        run_cell(ctx, RedundancyProtocol(layer="layer9"), "pairs")
