"""PGD: epsilon = 0 is the clean accuracy, every adversarial image lies within epsilon, restarts
only ever find more adversarials, and runs are reproducible without touching the caller's RNG."""

from __future__ import annotations

import pytest
import torch

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.pgd import PGDProtocol, cells, eps_label, parse_eps, perturbation_norms
from coanalysis.run.pipeline import run_analysis
from tests.coanalysis.probed import probed_context

FLOAT32_SLACK = 1e-6  # x + delta is rounded to float32 (spacing <= 6e-8 in [0, 1])


def context(tiny_runs, out):
    return probed_context(tiny_runs, "byol", out)


def test_eps_zero_is_clean_accuracy_and_every_adversarial_is_within_eps(tiny_runs, tmp_path):
    session, ctx = context(tiny_runs, tmp_path / "res")
    protocol = PGDProtocol(linf_eps=(0.0, 1 / 255, 8 / 255), l2_eps=(0.0, 0.5), steps=3)
    result = run_analysis(session, ctx, ANALYSES["pgd"], protocol)
    assert list(result.cells) == ["linf eps=0", "linf eps=1/255", "linf eps=8/255", "l2 eps=0", "l2 eps=0.5"]
    for key in ("linf eps=0", "l2 eps=0"):
        assert result.cells[key]["accuracy"] == ctx.clean_accuracy and result.cells[key]["max_perturbation"] == 0
    for cell in result.cells.values():
        assert cell["n"] == 256 and cell["clean_accuracy"] == ctx.clean_accuracy
        assert cell["max_perturbation"] <= cell["eps"] + FLOAT32_SLACK
        assert cell["accuracy"] <= cell["clean_accuracy"]
    assert result.cells["linf eps=8/255"]["max_perturbation"] > 7 / 255
    assert result.cells["linf eps=8/255"]["accuracy"] < ctx.clean_accuracy - 0.2


def test_restarts_only_add_adversarials_and_runs_repeat_exactly(tiny_runs, tmp_path):
    session, ctx = context(tiny_runs, tmp_path / "one")
    analysis = ANALYSES["pgd"]
    once = PGDProtocol(linf_eps=(1 / 255,), l2_eps=(), steps=2, n=64)
    torch.manual_seed(5)
    expected_draw = torch.rand(3)
    torch.manual_seed(5)
    first = run_analysis(session, ctx, analysis, once).cells["linf eps=1/255"]
    assert torch.equal(torch.rand(3), expected_draw)  # the caller's random state is untouched
    session2, ctx2 = context(tiny_runs, tmp_path / "again")
    assert run_analysis(session2, ctx2, analysis, once).cells["linf eps=1/255"]["accuracy"] == first["accuracy"]
    session3, ctx3 = context(tiny_runs, tmp_path / "twice")
    twice = PGDProtocol(linf_eps=(1 / 255,), l2_eps=(), steps=2, n=64, restarts=2)
    second = run_analysis(session3, ctx3, analysis, twice).cells["linf eps=1/255"]
    assert second["n"] == first["n"] == 64 and second["accuracy"] <= first["accuracy"]


def test_perturbation_norms_known_answer():
    x = torch.zeros(2, 3, 2, 2)
    adv = x.clone()
    adv[0, 0, 0, 0], adv[0, 1, 1, 1] = 0.5, -0.25
    linf, l2 = perturbation_norms(x, adv, "linf"), perturbation_norms(x, adv, "l2")
    assert linf.tolist() == [0.5, 0.0] and l2[0].item() == pytest.approx((0.25 + 0.0625) ** 0.5) and l2[1] == 0


def test_eps_text_round_trips():
    assert parse_eps("0.25/255") == 0.25 / 255 and parse_eps("1/255") == 1 / 255 and parse_eps("0.5") == 0.5
    assert [eps_label("linf", e) for e in PGDProtocol().linf_eps] == ["0", "0.25/255", "0.5/255", "1/255", "2/255",
                                                                       "4/255"]
    assert cells(PGDProtocol())[-4:] == ["l2 eps=0", "l2 eps=0.1", "l2 eps=0.25", "l2 eps=0.5"]
