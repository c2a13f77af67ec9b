"""CKA and RankMe against known answers, and `coanalysis similarity` end to end on the tiny runs."""

from __future__ import annotations

import json

import pytest
import torch

from coanalysis.analyses.similarity import MinibatchCKA, cka_matrices, linear_cka, rankme, sample_local_vectors
from tests.conftest import run_cli


def _features(n: int = 200, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_cka_of_a_representation_with_itself_and_a_rotation_is_one():
    x = _features()
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(1)).double())
    rotated = x.double() @ q
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, rotated) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.0 * x + 5.0) == pytest.approx(1.0, abs=1e-12)  # isotropic scale, shift
    m = cka_matrices({"a": x}, {"a": rotated.float(), "b": _features(seed=2)}, batch=50)
    assert m["unbiased"][0][0] == pytest.approx(1.0, abs=1e-6)
    assert m["linear"][0][0] == pytest.approx(1.0, abs=1e-6)
    assert abs(m["unbiased"][0][1]) < 0.1  # independent features: unbiased CKA near 0
    assert m["linear"][0][1] > m["unbiased"][0][1]  # the biased estimator is inflated at small n


def test_linear_cka_matches_the_formula_and_is_not_invariant_to_anisotropic_scaling():
    x, y = _features(seed=3), _features(seed=4)
    xc, yc = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    hsic = lambda a, b: torch.trace(a @ a.T @ b @ b.T)  # noqa: E731
    expected = hsic(xc, yc) / torch.sqrt(hsic(xc, xc) * hsic(yc, yc))
    assert linear_cka(x, y) == pytest.approx(float(expected), rel=1e-10)
    scaled = x.clone()
    scaled[:, 0] *= 10
    assert linear_cka(x, scaled) < 0.99


def test_minibatch_cka_needs_more_than_three_images_per_batch():
    acc = MinibatchCKA(1, 1)
    with pytest.raises(ValueError):
        acc.update([_features(3)], [_features(3)])


def test_rankme_of_identity_is_d_and_of_rank_one_is_about_one():
    assert rankme(torch.eye(32)) == pytest.approx(32.0, rel=1e-4)
    assert rankme(torch.ones(50, 8)) == pytest.approx(1.0, abs=1e-3)
    low = _features(500, 4) @ torch.randn(4, 64, generator=torch.Generator().manual_seed(5))
    assert rankme(low) <= 4.0 + 1e-3


def test_local_vectors_are_a_seeded_subsample_of_positions():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    every = sample_local_vectors(maps, 1000, 0)
    assert every.shape == (32, 3) and torch.equal(every[5], maps[0, :, 1, 1])
    a, b = sample_local_vectors(maps, 10, 7), sample_local_vectors(maps, 10, 7)
    assert a.shape == (10, 3) and torch.equal(a, b)


@pytest.mark.parametrize("rows", [5, 1000])
def test_local_vectors_drawn_over_ranks_are_those_of_the_whole_maps(rows):
    """Each rank holds its images' maps (here rank 0 of two, seven images and three); the draw is the
    one from their concatenation, in the same order."""
    from coanalysis.distributed.image_split import ImageSplit, _from_bytes, _to_bytes

    maps = torch.randn(10, 3, 2, 2)
    mine, theirs = maps[:7], maps[7:]
    chosen = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:rows] if rows < 40 else torch.arange(40)
    in_theirs = torch.nonzero(chosen >= 28).flatten()
    replies = iter([torch.tensor([[3, 3, 2, 2]]), in_theirs,
                    theirs.permute(0, 2, 3, 1).reshape(-1, 3)[chosen[in_theirs] - 28]])

    def exchange(blob: bytes) -> list[bytes]:  # rank 1's side of each exchange, after rank 0's own
        return [blob, _to_bytes(next(replies))]

    drawn = sample_local_vectors(mine, rows, 3, ImageSplit(rank=0, world=2, exchange=exchange))
    assert torch.equal(drawn, sample_local_vectors(maps, rows, 3))
    assert _from_bytes(_to_bytes(drawn)).shape == drawn.shape


def test_similarity_command_writes_results_and_a_report_section(tiny_runs, tmp_path):
    runs = ["--ckpt", str(tiny_runs["byol"]), "--ckpt", str(tiny_runs["co-byol"]), "--name", "byol", "--name", "co"]
    out = run_cli("coanalysis", "similarity", *runs, "--n-images", "64", "--cka-batch", "32",
                  "--out", str(tmp_path / "res"), "--figures", str(tmp_path / "figs"), "--no-progress")
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "res" / "co" / "similarity.json").read_text())
    assert set(result["cells"]) == {"rank", "cka:byol", "cka:co"}
    self_cka = result["cells"]["cka:co"]
    layers = self_cka["layers"]
    assert len(layers) > 1 and all(self_cka["linear"][i][i] == pytest.approx(1.0) for i in range(len(layers)))
    assert all(self_cka["unbiased"][i][i] == pytest.approx(1.0) for i in range(len(layers)))
    assert result["protocol"]["data"]["n"] == 64 and result["protocol"]["seed"] == 0
    rank = result["cells"]["rank"]
    assert 1.0 <= rank["rankme_global"] <= rank["dims"] and rank["n"] == 64
    for name in ("similarity-rank", "similarity-models", "similarity-layers"):
        assert (tmp_path / "figs" / f"{name}.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("flags,message", [(["--n-images", "3"], "--n-images: expected an integer of at least 4"),
                                           (["--cka-batch", "2"], "--cka-batch: expected an integer of at least 4"),
                                           (["--layers", "layer9"], "unknown layer 'layer9'")])
def test_similarity_bad_input_is_one_line_exit_2(flags, message, tiny_runs, tmp_path, capsys):
    from coanalysis.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["similarity", "--ckpt", str(tiny_runs["byol"]), *flags, "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
