"""coanalysis.results.stats and report.findings: bootstrap intervals, paired differences, seed groups and
the wording of findings, against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from coanalysis.results import stats
from coanalysis.report.findings import group_difference, paired_findings, seed_groups


def test_packed_bits_round_trip_and_digest():
    correct = np.random.default_rng(0).random(1003) < 0.7
    assert (stats.unpack_bits(stats.pack_bits(correct), 1003) == correct).all()
    assert len(stats.pack_bits(correct)) <= 4 * (1003 // 8 + 1) // 3 + 4  # n / 8 bytes, base64
    assert stats.images_digest([1, 2, 3]) == stats.images_digest(np.array([1, 2, 3]))
    assert stats.images_digest([1, 2, 3]) != stats.images_digest([1, 3, 2])  # order matters for pairing


def test_bootstrap_interval_matches_the_binomial_width():
    p, n = 0.8, 2000
    correct = np.zeros(n, dtype=bool)
    correct[:int(p * n)] = True
    lo, hi = stats.bootstrap_interval(correct)
    half = 1.96 * (p * (1 - p) / n) ** 0.5  # 1.75 points
    assert lo < p < hi and (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert stats.bootstrap_interval(correct) == (lo, hi)  # seeded: the same interval every time
    record = stats.correctness_record(correct, np.arange(n))
    assert record["interval"] == [lo, hi] and record["bootstrap"]["resamples"] == 1000
    assert stats.cell_correctness({**record, "n": n}).sum() == p * n


def test_masks_are_resampled_too():
    # every image right under one mask and wrong under the other: images alone carry no spread,
    # so the whole width comes from resampling the two masks
    values = np.stack([np.ones(500), np.zeros(500)])
    lo, hi = stats.bootstrap_interval(values)
    assert lo <= 0.25 and hi >= 0.75


def test_paired_difference_of_nested_and_of_identical_models():
    n = 1000
    a = np.zeros(n)
    a[:700] = 1
    b = np.zeros(n)
    b[:650] = 1  # right on a subset of a's images: 5 points, paired interval tight
    d, lo, hi = stats.paired_difference(a, b)
    assert d == pytest.approx(0.05) and 0.03 < lo < 0.05 < hi < 0.07
    assert stats.paired_difference(a, a) == (0.0, 0.0, 0.0)
    shuffled = np.random.default_rng(1).permutation(a)  # same accuracy, other images: 0 within noise
    d, lo, hi = stats.paired_difference(a, shuffled)
    assert d == 0 and lo < 0 < hi


def test_t_interval_and_two_seeds():
    s = stats.t_interval([0.1, 0.3])
    assert s.mean == pytest.approx(0.2) and s.sd == pytest.approx(0.1414, abs=1e-4)
    assert s.interval == pytest.approx((0.2 - 1.2706, 0.2 + 1.2706), abs=1e-4)  # t(1) = 12.706
    assert "2 seeds" in s.text() and "(1 seed)" in stats.t_interval([0.5]).text()
    d, interval = group_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert d == pytest.approx(0.1) and interval[0] < 0 < interval[1]  # sd 0.1 on 3 seeds: within noise


def test_finding_words_only_outside_noise():
    assert stats.finding("co", "byol", 0.05, (0.03, 0.07), what="σ = 0.1", n=1000) == (
        "co has 5.0 points higher accuracy than byol at σ = 0.1 (95% CI [+3.0, +7.0], n = 1\u202f000, "
        "one seed: training noise not measured).")
    text = stats.finding("co", "byol", 0.01, (-0.01, 0.03), what="σ = 0.1", n=1000, seeds=3)
    assert "within noise" in text and "higher" not in text and "3 seeds" in text
    assert "interval unknown, so no ranking" in stats.finding("co", "byol", 0.05, None, what="x", n=10)


def _cell(acc: float, n: int = 1000, order: int = 0) -> dict:
    correct = np.zeros(n, dtype=bool)
    correct[np.random.default_rng(order).permutation(n)[:round(acc * n)]] = True
    return {"accuracy": acc, "n": n, **stats.correctness_record(correct, np.arange(n))}


def test_paired_findings_pick_a_difference_outside_noise():
    cells = {"byol": {0.0: _cell(0.9), 0.1: _cell(0.6), 0.5: _cell(0.30)},
             "co": {0.0: _cell(0.9), 0.1: _cell(0.7), 0.5: _cell(0.31, order=5)}}
    (line,) = paired_findings(cells, "byol", {"byol": 1, "co": 1}, what="σ")
    assert line.startswith("co has 10.0 points higher accuracy than byol at σ = 0.1 (95% CI [")
    other_images = {"byol": {0.1: _cell(0.6)}, "co": {0.1: {**_cell(0.7), "images": "elsewhere"}}}
    assert "interval unknown" in paired_findings(other_images, "byol", {}, what="σ")[0]


def test_seed_groups_from_configs_and_by_hand():
    def model(seed, lr=0.5, **extra):
        return {"config": {"method": "byol", "lr": lr, "seed": seed, "run_name": f"r{seed}", "out": "x"}, **extra}

    models = {"byol-s0": model(0), "byol-s1": model(1), "byol-lr1": model(0, lr=1.0), "timm": {"config": None},
              "a": {"group": "third"}, "b": {"group": "third"}}
    groups = seed_groups(models)
    assert groups == {"byol": ["byol-s0", "byol-s1"], "byol-lr1": ["byol-lr1"], "timm": ["timm"],
                      "third": ["a", "b"]}


def _nested(rng, n: int) -> np.ndarray:
    """Three models' correctness on the same images: b right on a subset of a's, c independent."""
    a = rng.random(n) < 0.7
    return np.stack([a, a & (rng.random(n) < 0.9), rng.random(n) < 0.5])


def _quantiles(means: np.ndarray) -> np.ndarray:
    return np.quantile(means, [0.025, 0.25, 0.5, 0.75, 0.975], axis=-1)


@pytest.mark.parametrize("case", ["correct", "masks", "corruption_mean", "joint"])
def test_counted_resampling_has_the_distribution_of_drawn_indices(case):
    # counting how often each distinct per-image value is drawn (multinomial) is the same
    # distribution as drawing n image indices with replacement: their quantiles agree within
    # Monte Carlo error (20 000 resamples: ~0.1 points), and the counted path is the one taken
    rng = np.random.default_rng(3)
    n = 2000
    values = {"correct": rng.random((1, n)) < 0.8,
              "masks": rng.random((5, n)) < np.linspace(0.5, 0.9, 5)[:, None],
              "corruption_mean": (rng.random((76, n)) < 0.6).mean(axis=0)[None],
              "joint": _nested(rng, n)}[case].astype(np.float64)
    columns, inverse = np.unique(values.T, axis=0, return_inverse=True)
    assert len(columns) * 8 <= n
    counted = stats.counted_row_means(columns, inverse.reshape(-1), 20000, 0)
    indexed = stats.indexed_row_means(values, 20000, 1)
    assert counted.shape == indexed.shape == (len(values), 20000)
    assert np.abs(_quantiles(counted) - _quantiles(indexed)).max() < 0.003
    assert np.allclose(counted.mean(axis=1), values.mean(axis=1), atol=0.001)
    if case == "joint":  # rows drawn on the same images keep their correlation
        assert np.corrcoef(counted)[0, 1] == pytest.approx(np.corrcoef(indexed)[0, 1], abs=0.03)
        assert np.corrcoef(counted)[0, 1] > 0.5 and abs(np.corrcoef(counted)[0, 2]) < 0.05
