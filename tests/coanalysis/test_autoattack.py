"""AutoAttack: epsilon = 0 is the clean accuracy, the suite finds at least what PGD finds, budgets hold."""

from __future__ import annotations

import pytest

from coanalysis.results import stats

from coanalysis.analyses.autoattack import VERSIONS, AutoAttackProtocol, cells, run_cell
from coanalysis.analyses.pgd import PGDProtocol
from coanalysis.analyses.pgd import run_cell as run_pgd_cell
from tests.coanalysis.analysis_encoders import PixelLinear, context, noise_images, wrap


def test_cells_follow_pgd_keys_and_versions():
    protocol = AutoAttackProtocol(linf_eps=(0.0, 1 / 255), l2_eps=(0.5,))
    assert cells(protocol) == ["linf eps=0", "linf eps=1/255", "l2 eps=0.5"]
    assert VERSIONS["cheap"] == ("apgd-ce", "apgd-t") and "square" in VERSIONS["standard"]
    assert protocol.to_json()["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def _pixel_context():
    """A 1x1-convolution encoder with a random 4-class probe on 24 noise images: fast to attack."""
    return context(wrap(PixelLinear(), "pixel-linear"), data=noise_images(24), batch_size=12)


def test_eps_zero_is_the_clean_accuracy():
    ctx = _pixel_context()
    clean, n = ctx.accuracy()
    for key in ("linf eps=0", "l2 eps=0"):
        cell = run_cell(ctx, AutoAttackProtocol(linf_eps=(0.0,), l2_eps=(0.0,), n=None), key)
        assert cell["accuracy"] == clean == cell["clean_accuracy"] and cell["max_perturbation"] == 0
        assert cell["n"] == n == 24
        # the per-image record (PROTOCOLS 11): its bits are the clean correctness, its interval brackets it
        assert stats.cell_correctness(cell).sum() == round(clean * n)
        assert cell["interval"][0] <= cell["accuracy"] <= cell["interval"][1] and cell["images"]


@pytest.mark.slow  # APGD-CE + APGD-T, 100 iterations each: about 30 s of CPU per norm
@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.1)])
def test_autoattack_finds_at_least_what_pgd_finds(norm, eps):
    ctx = _pixel_context()
    budgets = {"linf_eps": (eps,), "l2_eps": ()} if norm == "linf" else {"linf_eps": (), "l2_eps": (eps,)}
    key = cells(AutoAttackProtocol(**budgets))[0]
    aa = run_cell(ctx, AutoAttackProtocol(**budgets, version="cheap", n=None), key)
    pgd = run_pgd_cell(ctx, PGDProtocol(**budgets, steps=10), key)
    assert aa["n"] == pgd["n"] == 24 and aa["clean_accuracy"] == pgd["clean_accuracy"] > 0
    assert aa["accuracy"] <= pgd["accuracy"] < aa["clean_accuracy"]
    assert aa["max_perturbation"] <= eps + 1e-6


@pytest.mark.parametrize("flags,message", [(["--aa-eps", "linf"], "write NORM=LIST"),
                                           (["--aa-eps", "l3=0.1"], "write NORM=LIST"),
                                           (["--aa-eps", "linf=-1"], "expected a finite number >= 0"),
                                           (["--aa-n", "0"], "--aa-n: expected an integer of at least 1")])
def test_autoattack_bad_input_is_one_line_exit_2(flags, message, tiny_runs, tmp_path, capsys):
    from coanalysis.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["robustness", "--ckpt", str(tiny_runs["byol"]), "--only", "autoattack", *flags, "--out", str(tmp_path),
              "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_report_section_shows_autoattack_next_to_pgd(tmp_path):
    from coanalysis.report.data import ReportData
    from coanalysis.report.sections import autoattack as section
    from coanalysis.results.store import Result, ResultsStore

    store = ResultsStore(tmp_path)
    model = {"name": "m", "content_hash": "h"}
    aa_protocol = {**AutoAttackProtocol(linf_eps=(0.0, 1 / 255), l2_eps=()).to_json(), "data": {"n": 8}}
    for analysis, protocol, accs in (("autoattack", aa_protocol, (0.5, 0.125)),
                                     ("pgd", {**PGDProtocol().to_json(), "data": {"n": 8}}, (0.5, 0.25))):
        cells_ = {k: {"norm": "linf", "eps": e, "accuracy": a, "n": 8}
                  for k, e, a in (("linf eps=0", 0.0, accs[0]), ("linf eps=1/255", 1 / 255, accs[1]))}
        store.save(Result(analysis=analysis, model=model, protocol=protocol, cells=cells_, environment={},
                          wall_time_s=0.0, complete=True, expected_cells=2))
    built = section.build(ReportData.from_folders([tmp_path]))
    assert [f.name for f in built.figures] == ["autoattack-linf"]
    assert built.tables[0].rows == [["m", "50.0", "12.5"], ["PGD m", "50.0", "25.0"]]
