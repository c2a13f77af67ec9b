"""The corruption analysis: clean cell = clean accuracy, accuracy falls with severity, an
interrupted run resumes to the same results JSON, and CE / mCE follow their definitions."""

from __future__ import annotations

import json

import pytest

from coanalysis.analyses import ANALYSES, Analysis
from coanalysis.analyses.corruptions import CorruptionProtocol
from coanalysis.results.corruption_names import STANDARD
from coanalysis.data.corruption.settings import CorruptionSettings
from coanalysis.results.derived.corruptions import (ALEXNET_ERRORS, alexnet_errors, corruption_errors, errors,
                                            mean_corruption_error, summarize)
from coanalysis.results.derived.corruptions import mean_standard_accuracy as mean_accuracy
from coanalysis.run.pipeline import run_analysis
from tests.coanalysis.probed import probed_context

# mmpretrain's `get_ce_alexnet` (the per-corruption means of the same published errors)
PUBLISHED_MEANS = {"gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
                   "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360,
                   "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592,
                   "contrast": 0.853204, "elastic_transform": 0.646056, "pixelate": 0.717840,
                   "jpeg_compression": 0.606500}


def context(tiny_runs, out, cache, workers=1, name="byol"):
    session, ctx = probed_context(tiny_runs, name, out)
    ctx.corruption = CorruptionSettings(workers=workers, cache_dir=cache)
    return session, ctx


def without_wall_times(result) -> dict:
    """The result's JSON without what depends on the clock: wall times and when it was written."""
    data = json.loads(json.dumps(result.to_json()))
    data.pop("wall_time_s")
    data.pop("written")
    for cell in data["cells"].values():
        cell.pop("wall_time_s")
    return data


def test_clean_cell_equals_clean_accuracy_and_cells_are_recorded(tiny_runs, tmp_path):
    session, ctx = context(tiny_runs, tmp_path / "res", tmp_path / "cache")
    protocol = CorruptionProtocol(corruptions=("fog",), severities=(2,))
    result = run_analysis(session, ctx, ANALYSES["corruptions"], protocol)
    assert list(result.cells) == ["clean", "fog/2"] and result.complete
    assert result.cells["clean"]["accuracy"] == ctx.clean_accuracy and result.cells["clean"]["n"] == 256
    assert result.cells["fog/2"]["n"] == 256 and result.cells["fog/2"]["corruption"] == "fog"
    assert result.protocol["source"] == "imagecorruptions" and result.protocol["min_side"] == 32


def test_resume_after_an_interruption_gives_the_same_results_json(tiny_runs, tmp_path):
    protocol = CorruptionProtocol(corruptions=("gaussian_noise", "pixelate"), severities=(1, 4), n=64)
    session, ctx = context(tiny_runs, tmp_path / "whole", tmp_path / "cache-whole", workers=2)
    whole = run_analysis(session, ctx, ANALYSES["corruptions"], protocol)

    real = ANALYSES["corruptions"]
    calls = []

    def interrupted(ctx, protocol, key):
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the fourth cell
        calls.append(key)
        return real.run_cell(ctx, protocol, key)

    crashing = Analysis(real.name, real.title, real.protocol_type, real.cells, interrupted, real.condition_fields)
    session, ctx = context(tiny_runs, tmp_path / "resumed", tmp_path / "cache-resumed", workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_analysis(session, ctx, crashing, protocol)
    partial = json.loads(session.store.path("byol", "corruptions").read_text())  # a valid file, 3 cells
    assert list(partial["cells"]) == ["clean", "gaussian_noise/1", "gaussian_noise/4"] and not partial["complete"]
    session, ctx = context(tiny_runs, tmp_path / "resumed", tmp_path / "cache-resumed", workers=2)
    resumed = run_analysis(session, ctx, real, protocol)
    assert without_wall_times(resumed) == without_wall_times(whole)


@pytest.mark.slow
def test_accuracy_falls_as_severity_rises(tiny_runs, tmp_path):
    from scipy.stats import wilcoxon

    session, ctx = context(tiny_runs, tmp_path / "res", tmp_path / "cache", workers=2)
    protocol = CorruptionProtocol(corruptions=STANDARD, severities=(1, 3, 5), n=128)
    result = run_analysis(session, ctx, ANALYSES["corruptions"], protocol)
    acc = {(c["corruption"], c["severity"]): c["accuracy"] for k, c in result.cells.items() if k != "clean"}
    # paired over the 15 corruptions (their levels differ a lot): severity 5 below severity 1
    drops = [acc[(c, 1)] - acc[(c, 5)] for c in STANDARD]
    assert wilcoxon(drops, alternative="greater").pvalue < 0.01, drops
    by_severity = {s: sum(acc[(c, s)] for c in STANDARD) / len(STANDARD) for s in (1, 3, 5)}
    assert result.cells["clean"]["accuracy"] > by_severity[1] > by_severity[3] > by_severity[5]


def test_alexnet_reference_matches_the_published_means_by_name():
    assert set(ALEXNET_ERRORS) == set(STANDARD) == set(PUBLISHED_MEANS)
    for name, errs in ALEXNET_ERRORS.items():
        assert sum(errs) / 5 == pytest.approx(PUBLISHED_MEANS[name], abs=5e-7), name
    # cells equal to AlexNet's errors give CE = 1 whatever order they come in
    cells = {"clean": {"accuracy": 0.9, "num_classes": 1000}}
    for name in reversed(STANDARD):
        for s, err in zip(range(1, 6), ALEXNET_ERRORS[name]):
            cells[f"{name}/{s}"] = {"accuracy": 1 - err}
    summary = summarize(cells)
    assert all(ce == pytest.approx(1.0) for ce in summary["ce_alexnet"].values())
    assert summary["mce_alexnet"] == pytest.approx(1.0) and summary["standard_cells"] == 75
    assert "ce_alexnet" not in summarize({"clean": {"accuracy": 0.9, "num_classes": 10}, "fog/1": {"accuracy": 0.5}})


def test_ce_and_mce_against_a_baseline_follow_the_definition():
    model = {"clean": {"accuracy": 0.9}, "fog/1": {"accuracy": 0.8}, "fog/2": {"accuracy": 0.6},
             "snow/1": {"accuracy": 0.5}, "speckle_noise/1": {"accuracy": 0.1},
             "frost/1": {"accuracy": None, "missing": True}}
    baseline = {"clean": {"accuracy": 0.9}, "fog/1": {"accuracy": 0.5}, "fog/2": {"accuracy": 0.5},
                "snow/1": {"accuracy": 0.75}, "speckle_noise/1": {"accuracy": 0.5}}
    ce = corruption_errors(errors(model), errors(baseline))
    assert ce["fog"] == pytest.approx((0.2 + 0.4) / (0.5 + 0.5)) and ce["snow"] == pytest.approx(0.5 / 0.25)
    assert ce["speckle_noise"] == pytest.approx(0.9 / 0.5) and "frost" not in ce
    mce, count = mean_corruption_error(ce)  # the extra corruption is left out of mCE
    assert mce == pytest.approx((0.6 + 2.0) / 2) and count == 2
    assert mean_accuracy(model) == (pytest.approx((0.8 + 0.6 + 0.5) / 3), 3)
    summary = summarize(model, baseline, "base")
    assert summary["missing"] == ["frost/1"] and summary["mce"] == pytest.approx(1.3)
    assert alexnet_errors()["fog"][3] == ALEXNET_ERRORS["fog"][2]


def test_other_severities_add_cells_to_the_stored_result(tiny_runs, tmp_path):
    session, ctx = context(tiny_runs, tmp_path / "res", tmp_path / "cache")
    analysis = ANALYSES["corruptions"]
    run_analysis(session, ctx, analysis, CorruptionProtocol(corruptions=("brightness",), severities=(1,), n=32))
    more = run_analysis(session, ctx, analysis, CorruptionProtocol(corruptions=("brightness",), severities=(5,), n=32))
    assert list(more.cells) == ["clean", "brightness/1", "brightness/5"] and more.protocol["severities"] == [1, 5]
