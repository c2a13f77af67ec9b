"""The report is rendered from results JSON alone, holds the sections whose results exist, states
computed takeaways, exports its figures and tables, and reads (or refuses) older result files."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil

import pytest

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.noise import NoiseProtocol
from coanalysis.figures.style import curve_from_cells, model_colors
from coanalysis.models.trainer import UserError
from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
from coanalysis.report import render_report
from coanalysis.report.sections.base import Table
from coanalysis.results.store import SCHEMA_VERSION, Result, ResultsStore, upgrade_result
from tests.conftest import run_cli
from tests.resultfiles import write_results

NOISE = {0.0: 0.90, 0.1: 0.60, 0.5: 0.20}


@pytest.fixture(scope="module")
def results_folder(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    session = Session(out=out, progress=False)
    for name, run in tiny_runs.items():
        ctx = make_context(session, open_model(session, str(run), name))
        run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0, 0.1, 0.5)))
    return out


def test_report_from_json_alone(results_folder, tiny_runs, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(results_folder, folder)
    html = render_report([folder], tmp_path / "report.html", baseline="byol").read_text()
    for title in ("Models", "Clean accuracy", "Gaussian noise", "Protocol appendix"):
        assert f"<h2>{title}</h2>" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert "co-byol − byol at σ =" in html or "than byol at σ =" in html  # computed takeaway
    assert "http://" not in html and "https://" not in html  # self-contained
    # the exported figure and the noise table hold the stored numbers
    assert (tmp_path / "figures" / "noise.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "figures" / "noise.png").read_bytes() == base64.b64decode(images[0])
    stored = json.loads((folder / "co-byol" / "noise.json").read_text())
    rows = list(csv.reader(io.StringIO((tmp_path / "tables" / "noise-table1.csv").read_text())))
    co = next(r for r in rows if r[0] == "co-byol")
    cells = [stored["cells"][k] for k in ("sigma=0", "sigma=0.1", "sigma=0.5")]
    assert co[1:] == [f"{100 * c['accuracy']:.1f} [{100 * c['interval'][0]:.1f}, {100 * c['interval'][1]:.1f}]"
                      for c in cells]
    assert all(c["interval"][0] <= c["accuracy"] <= c["interval"][1] for c in cells)
    assert (tmp_path / "tables" / "models.md").read_text().startswith("| model | format |")
    # the models table states each checkpoint's training progress from its meta.json
    meta = json.loads((tiny_runs["co-byol"] / "meta.json").read_text())
    models = list(csv.DictReader(io.StringIO((tmp_path / "tables" / "models.csv").read_text())))
    training = next(r["training"] for r in models if r["model"].startswith("co-byol"))
    unfinished = "" if meta["finished"] else " (unfinished)"  # the tiny runs stop after 2 of their steps
    assert training == (f"{meta['step']} of {meta['total_steps']} steps{unfinished}, "
                        f"final loss {meta['metrics']['loss']:.3g}")


def test_report_without_noise_results_skips_the_section(results_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(results_folder, folder)
    for path in folder.glob("*/noise.json"):
        path.unlink()
    html = render_report([folder], tmp_path / "r.html").read_text()
    assert "<h2>Clean accuracy</h2>" in html and "<h2>Gaussian noise</h2>" not in html
    assert "data:image/png" not in html and not (tmp_path / "figures").exists()


def test_empty_folder_and_unknown_baseline(results_folder, tmp_path):
    with pytest.raises(UserError, match="no results"):
        render_report([tmp_path], tmp_path / "r.html")
    with pytest.raises(UserError, match="--baseline"):
        render_report([results_folder], tmp_path / "r.html", baseline="nobody")


def test_takeaway_states_the_largest_difference_with_its_sample(tmp_path):
    folder = write_results(tmp_path / "res", {"byol": NOISE, "co-byol": {0.0: 0.90, 0.1: 0.723, 0.5: 0.25}})
    html = render_report([folder], tmp_path / "r.html", baseline="byol").read_text()
    # 72.3 - 60.0 = 12.3 points at sigma 0.1 is larger than 25 - 20 = 5 at sigma 0.5; co-byol is right on a
    # superset of byol's images, so the paired interval is tight around 12.3 and excludes 0
    found = re.search(r"co-byol has 12.3 points higher accuracy than byol at σ = 0.1 \(95% CI \[\+(\d+\.\d), "
                      r"\+(\d+\.\d)\], n = 10\u202f000, one seed: training noise not measured, noise seed 0\)\.", html)
    assert found and 11.5 < float(found[1]) < 12.3 < float(found[2]) < 13.1
    assert "byol (baseline)" in html and "Differences are taken against byol (--baseline)" in html


def test_curves_from_cells_carry_their_spread():
    cells = [{"p": p, "accuracy": a} for p, accs in ((0.0, [0.9] * 5), (0.75, [0.40, 0.41, 0.42, 0.43, 0.44]))
             for a in accs]
    byol = curve_from_cells(cells, "p")
    assert byol.x == (0.0, 0.75) and byol.repeats == (5, 5)
    assert byol.at(0.75)[0] == pytest.approx(42.0) and byol.at(0.75)[1] == pytest.approx(1.5811, abs=1e-4)


def test_table_exports():
    table = Table(["model", "a|b"], [["x", 1.5], ["y", None]], "caption", title="T")
    assert table.to_csv() == "model,a|b\nx,1.5\ny,\n"
    assert table.to_markdown() == "**T**\n\n| model | a\\|b |\n|---|---|\n| x | 1.5 |\n| y |  |\n\ncaption\n"


@pytest.mark.parametrize("k", [2, 3, 5])
def test_two_to_five_models(k, tmp_path):
    names = ["byol", "co-byol", "co-byol-w1", "simclr", "vicreg"][:k]
    noise = {name: {0.0: 0.9, 0.1: 0.6 + 0.01 * i, 0.5: 0.2} for i, name in enumerate(names)}
    folder = write_results(tmp_path / "res", noise)
    html = render_report([folder], tmp_path / "r.html", baseline="co-byol").read_text()
    swatches = re.findall(r'class="swatch" style="background: (#[0-9a-f]{6})"', html)
    assert len(swatches) == k and len(set(swatches)) == k
    takeaways = re.findall(r"<p class=\"takeaway\">([^<]*)</p>", html)
    assert len(takeaways) == k - 1 and all(" than co-byol at " in t for t in takeaways)  # one per model
    assert "byol has 1.0 points lower accuracy than co-byol at σ = 0.1 (95% CI [" in html
    models_csv = (tmp_path / "tables" / "models.csv").read_text().splitlines()
    assert len(models_csv) == k + 1 and models_csv[1].startswith("co-byol (baseline),")
    # a model keeps its colour whatever the baseline or the other models
    assert model_colors(names)["co-byol"] == model_colors(["co-byol", "byol"])["co-byol"]


def test_missing_and_incomplete_results_are_noted(tmp_path):
    folder = write_results(tmp_path / "res", {"byol": NOISE, "co-byol": None, "simclr": NOISE})
    store = ResultsStore(folder)
    partial = store.load("simclr", "noise")
    store.save(Result(**{**partial.to_json(), "complete": False, "expected_cells": 7}))
    html = render_report([folder], tmp_path / "r.html").read_text()
    assert "<h2>Gaussian noise</h2>" in html
    assert "No noise results for co-byol." in html
    assert "simclr/noise is incomplete: 3 of 7 cells" in html


def _schema_1(result: Result) -> dict:
    data = result.to_json()
    data.pop("written")
    data["schema_version"] = 1
    return data


def test_older_schema_is_upgraded_and_noted(tmp_path, capsys):
    folder = write_results(tmp_path / "res", {"byol": NOISE, "co-byol": NOISE})
    path = folder / "byol" / "noise.json"
    old = _schema_1(Result.from_json(json.loads(path.read_text())))
    path.write_text(json.dumps(old))
    upgraded = upgrade_result(dict(old), "x", log=None)
    assert upgraded["schema_version"] == SCHEMA_VERSION == 3 and upgraded["written"] is None
    html = render_report([folder], tmp_path / "r.html").read_text()
    assert f"note: {path}: upgraded result schema 1 -&gt; 2" not in html  # a log line, not report text
    assert f"note: {path}: upgraded result schema 1 -> 2: no record time" in capsys.readouterr().out
    assert "not recorded" in html and "<h2>Gaussian noise</h2>" in html


@pytest.mark.parametrize("version,message", [(99, "result schema 99, newer than this co-ssl reads (3); upgrade co-ssl"),
                                             (None, "no valid schema_version"), (0, "predates result schema 1")])
def test_unreadable_schema_is_refused_with_one_line(version, message, tmp_path):
    folder = write_results(tmp_path / "res", {"byol": NOISE})
    path = folder / "byol" / "noise.json"
    data = json.loads(path.read_text())
    data["schema_version"] = version
    path.write_text(json.dumps(data))
    out = run_cli("coanalysis", "report", str(folder))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert message in out.stderr and str(path) in out.stderr


def test_same_name_for_two_checkpoints_is_refused(tmp_path):
    a = write_results(tmp_path / "a", {"byol": NOISE})
    b = write_results(tmp_path / "b", {"byol": NOISE})
    model = json.loads((b / "byol" / "model.json").read_text())
    for path in b.glob("byol/*.json"):
        data = json.loads(path.read_text())
        if "model" in data:
            data["model"]["content_hash"] = "0" * 64
        path.write_text(json.dumps(data))
    assert model["name"] == "byol"
    with pytest.raises(UserError, match="two different checkpoints are both named 'byol'"):
        render_report([a, b], tmp_path / "r.html")


def test_report_command_writes_html_figures_and_tables(tmp_path):
    folder = write_results(tmp_path / "res", {"byol": NOISE, "co-byol": NOISE})
    out = run_cli("coanalysis", "report", str(folder), "--out", str(tmp_path / "out" / "cmp.html"), "--baseline",
                  "co-byol", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "4 sections: models, clean, noise, appendix" in out.stdout
    assert {p.name for p in (tmp_path / "out" / "figures").iterdir()} == {"noise.png", "noise.pdf"}
    assert (tmp_path / "out" / "tables" / "noise-table1.md").is_file()
    out = run_cli("coanalysis", "report", str(folder), "--out", str(tmp_path))
    assert out.returncode == 2 and "is a folder" in out.stderr


def test_training_config_table_shows_a_newer_option_s_default_where_a_run_did_not_store_it():
    """co-ssl-train stores options added after schema 1 only when they differ from their default
    (`--local-positions 0` is not stored): such a run shows the default, a checkpoint without a
    training config shows '–'."""
    from coanalysis.report.data import ReportData
    from coanalysis.report.sections import models as section

    configs = {"sampled": {"method": "co-dino", "local_positions": 8}, "all": {"method": "co-dino"},
               "zoo": {}}
    data = ReportData({n: {"name": n, "config": c} for n, c in configs.items()}, {}, None, [])
    table = next(t for t in section.build(data).tables if t.name == "training-config")
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows["local_positions *"] == ["8", "0", "–"]
    assert rows["method *"] == ["co-dino", "co-dino", "–"]


def _probe_protocol(n: int) -> dict:
    return {"seed": 0, "n_train": n, "weight_decays": [0.0, 1e-4], "train_data": {"dataset": "d", "n": n}}


def test_a_section_read_by_another_probe_than_the_clean_table_says_so():
    """`robustness --n-train 1000`, then `probe` on the whole split: the noise section notes that its
    probe is not the clean table's; a result read by the same probe, or by none, gets no note."""
    from coanalysis.report.data import ReportData
    from coanalysis.report.render import probe_notes
    from coanalysis.report.sections.base import Section

    def result(model: str, analysis: str, probe: dict) -> Result:
        return Result(analysis, {"name": model}, {"probe": probe} if analysis != "probe" else probe, {}, {}, 0.0,
                      True, 0)

    results = {("a", "probe"): result("a", "probe", _probe_protocol(60000)),
               ("a", "noise"): result("a", "noise", _probe_protocol(1000)),
               ("b", "probe"): result("b", "probe", _probe_protocol(500)),
               ("b", "noise"): result("b", "noise", _probe_protocol(500)),
               ("a", "erf"): result("a", "erf", {})}
    data = ReportData({"a": {"name": "a"}, "b": {"name": "b"}}, results, None, [])
    notes = probe_notes(data, Section("noise", "Gaussian noise"))
    assert notes == ["a/noise was read by a probe fitted on 1000 training images, seed 0; the clean-accuracy "
                     "table's probe on 60000 training images, seed 0 (they differ in n_train, train_data), so the "
                     "clean points here need not equal that table."]
    assert probe_notes(data, Section("erf", "ERF")) == []


@pytest.mark.parametrize("model, label", [({"family": "vit", "global_readout": "cls"}, "class token"),
                                          ({"family": "vit", "global_readout": "avg"}, "mean of patch tokens"),
                                          ({"arch": "resnet18"}, "global average"),
                                          ({"readout": {"kind": "bag-of-patches", "patch_size": 8, "stride": 8}},
                                           "bag of 8 px patches, stride 8")])
def test_the_clean_table_names_the_readout_the_probe_read(model, label):
    from coanalysis.report.sections.clean import _readout

    assert _readout(Result("probe", {"name": "m", **model}, {}, {}, {}, 0.0, True, 0)) == label
