"""Figures draw a seed group (checkpoints differing only in seed) as its mean over seeds with a
±1 sd band and error bars, the seeds as thin unlabelled lines; a lone model keeps its own band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coanalysis.figures.noise import noise_figure
from coanalysis.figures.style import Series, draw_series, group_curve, model_colors, new_figure
from coanalysis.report.findings import seed_groups
from tests.resultfiles import model_record, noise_result


def _labelled(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}


def test_group_mean_and_sd_at_the_common_conditions():
    a = Series((0.0, 0.1, 0.5), (90.0, 60.0, 20.0))
    b = Series((0.0, 0.1, 0.5, 1.0), (80.0, 64.0, 30.0, 5.0))
    curve = group_curve([a, b])
    assert curve.x == (0.0, 0.1, 0.5)  # 1.0 was measured by one seed only: not averaged
    assert curve.y == pytest.approx((85.0, 62.0, 25.0))
    assert curve.std == pytest.approx((math.sqrt(50.0), math.sqrt(8.0), math.sqrt(50.0)))
    assert curve.repeats == (2, 2, 2)


def test_draw_series_draws_groups_and_lone_models():
    series = {"byol-s0": Series((0.0, 0.5), (90.0, 20.0)), "byol-s1": Series((0.0, 0.5), (86.0, 30.0)),
              "co-byol": Series((0.0, 0.5), (88.0, 40.0), band=((87.0, 89.0), (38.0, 42.0)))}
    colors = model_colors(series)
    fig, ax = new_figure()
    draw_series(ax, series, colors, {"byol": ["byol-s0", "byol-s1"], "co-byol": ["co-byol"]})
    lines = _labelled(ax)
    assert set(lines) == {"byol (2 seeds, mean ± sd)", "co-byol"}
    assert list(lines["byol (2 seeds, mean ± sd)"].get_ydata()) == pytest.approx([88.0, 25.0])
    thin = [line for line in ax.lines if line.get_label().startswith("_") and line.get_alpha() == 0.35]
    assert sorted(tuple(line.get_ydata()) for line in thin) == [(86.0, 30.0), (90.0, 20.0)]
    # the group's band spans mean ± sd, the lone model's band its own interval
    bands = [c for c in ax.collections if c.__class__.__name__ == "FillBetweenPolyCollection"
             or c.__class__.__name__ == "PolyCollection"]
    extents = sorted((round(float(p.get_paths()[0].vertices[:, 1].min()), 6),
                      round(float(p.get_paths()[0].vertices[:, 1].max()), 6)) for p in bands)
    sd0, sd1 = np.std([90, 86], ddof=1), np.std([20, 30], ddof=1)
    assert extents == sorted([(round(25 - sd1, 6), round(88 + sd0, 6)), (38.0, 89.0)])
    # the group's mean carries error bars in the group's colour (the first member's)
    assert lines["byol (2 seeds, mean ± sd)"].get_color() == colors["byol-s0"]


def test_noise_figure_groups_seeds_from_their_configs():
    def seed_model(name, seed):
        record = model_record(name)
        record["config"] = {**record["config"], "seed": seed}
        return record

    results = [noise_result(seed_model("byol-s0", 0), {0.0: 0.9, 0.2: 0.5}),
               noise_result(seed_model("byol-s1", 1), {0.0: 0.8, 0.2: 0.6}),
               noise_result(model_record("co-byol", "co-byol"), {0.0: 0.9, 0.2: 0.7})]
    models = {r.model["name"]: r.model for r in results}
    groups = seed_groups(models)
    assert groups["byol"] == ["byol-s0", "byol-s1"]
    fig = noise_figure(results, model_colors(models), groups)
    lines = _labelled(fig.axes[0])
    assert set(lines) == {"byol (2 seeds, mean ± sd)", "co-byol"}
    assert list(lines["byol (2 seeds, mean ± sd)"].get_ydata()) == pytest.approx([85.0, 55.0])
    # without groups every checkpoint is its own curve, as before
    fig = noise_figure(results, model_colors(models))
    assert set(_labelled(fig.axes[0])) == {"byol-s0", "byol-s1", "co-byol"}


def test_redundancy_above_chance_per_group():
    from coanalysis.figures.redundancy import above_chance_figure
    from coanalysis.results.store import Result

    def result(name, r, r_null, seed=0):
        record = model_record(name)
        record["config"] = {**record["config"], "seed": seed}
        cell = {"pearson_r": r, "ci95": [r - 0.02, r + 0.02], "r_null": r_null, "map_size": [4, 4]}
        return Result(analysis="redundancy", model=record, protocol={}, cells={"pairs": cell}, environment={},
                      wall_time_s=1.0, complete=True, expected_cells=1)

    results = [result("byol-s0", 0.70, 0.15, 0), result("byol-s1", 0.80, 0.17, 1), result("co-byol", 0.90, 0.17)]
    groups = {"byol": ["byol-s0", "byol-s1"], "co-byol": ["co-byol"]}
    fig = above_chance_figure(results, model_colors(r.model["name"] for r in results), groups)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.75, 0.90])
    nulls = [tuple(line.get_ydata()) for line in ax.lines if len(line.get_xdata()) == 2
             and line.get_ydata()[0] == line.get_ydata()[1]]
    assert sorted(round(n[0], 9) for n in nulls) == [0.16, 0.17]  # the group's mean r_null, co-byol's own
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "byol\n2 seeds, mean ± sd\n4×4 map" and labels[1] == "co-byol\none seed, 95% CI\n4×4 map"


def test_report_with_two_seeds_renders_the_group_figures(tmp_path):
    from coanalysis.report import render_report
    from coanalysis.results.store import Result, ResultsStore
    from tests.resultfiles import probe_result

    store = ResultsStore(tmp_path / "results")
    for name, seed, acc, r in (("byol-s0", 0, 0.6, 0.70), ("byol-s1", 1, 0.5, 0.80), ("co-byol", 0, 0.7, 0.9)):
        record = model_record(name, "co-byol" if name.startswith("co") else "byol")
        record["config"] = {**record["config"], "seed": seed}
        store.save_model(record)
        store.save(probe_result(record, 0.9))
        store.save(noise_result(record, {0.0: 0.9, 0.2: acc}))
        cell = {"pearson_r": r, "ci95": [r - 0.02, r + 0.02], "r_null": 0.16, "map_size": [4, 4], "n_pairs": 100,
                "n_images": 50, "layer": "layer4"}
        store.save(Result(analysis="redundancy", model=record, protocol={"seed": 0}, cells={"pairs": cell},
                          environment={}, wall_time_s=1.0, complete=True, expected_cells=1))
    html = render_report([tmp_path / "results"], tmp_path / "report.html").read_text()
    assert "Pearson r per seed group" in html
    assert (tmp_path / "figures" / "redundancy-redundancy_groups.png").exists()
    assert (tmp_path / "figures" / "noise.png").exists()
