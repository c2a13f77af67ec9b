"""`coanalysis demo`: missing data ends in one line, the summary is computed from the results, and
(slow) the whole pipeline runs on a small Fashion-MNIST, resumes without redoing work, and leaves
a report that renders."""

from __future__ import annotations

import json

import pytest
import torch

from coanalysis.analyses import ANALYSES
from coanalysis.run.end_to_end import mean_cell_accuracy, summary_table
from tests.conftest import run_cli
from tests.datafiles import write_fashion_mnist
from tests.resultfiles import model_record, noise_result


@pytest.mark.parametrize("flags,message", [(("--data-root", "{tmp}/nowhere"), "is not a folder"),
                                           (("--data-root", "{tmp}"), "not found")])
def test_missing_data_is_one_line(flags, message, tmp_path):
    out = run_cli("coanalysis", "demo", *[f.format(tmp=tmp_path) for f in flags], "--reports", str(tmp_path / "r"),
                  "--checkpoints", str(tmp_path / "c"), cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "c").exists()  # nothing trained


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_preset_without_cuda_is_one_line(tmp_path):
    out = run_cli("coanalysis", "demo", "--preset", "gpu", cwd=tmp_path)
    assert out.returncode == 2 and "--preset gpu needs CUDA" in out.stderr


def test_summary_table_is_computed_from_results():
    results = {"byol": {"noise": noise_result(model_record("byol"), {0.0: 0.9, 0.5: 0.3})},
               "co-byol": {"noise": noise_result(model_record("co-byol"), {0.0: 0.8, 0.5: 0.6})}}
    lines = summary_table({"byol": 0.9, "co-byol": 0.8}, results)
    assert lines[1].split() == ["byol", "90.0%", "60.0%"]
    assert lines[2].split() == ["co-byol", "80.0%", "70.0%"]
    assert "noise: 2" in lines[3]
    lines = summary_table({"byol": 0.9, "co-byol": 0.8}, results, {"byol": (0.88, 0.92)}, {"byol": 1, "co-byol": 1})
    assert lines[1].split()[:3] == ["byol", "90.0%", "[88.0,"] and lines[2].split()[:2] == ["co-byol", "80.0%"]
    assert lines[-1] == "seeds per model: byol 1, co-byol 1; one seed: training noise not measured"
    assert mean_cell_accuracy({"a": {"score": 1}}) is None


@pytest.mark.slow
def test_smoke_demo_end_to_end_and_resumed(tmp_path):
    write_fashion_mnist(tmp_path / "fm", n_train=96, n_test=48)
    args = ("coanalysis", "demo", "--preset", "smoke", "--data-root", str(tmp_path / "fm"), "--no-progress")
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = tmp_path / "reports" / "demo" / "report.html"
    # phases: 2 trainings, then per model its probe and every analysis with a demo protocol, then the report
    phases = 2 + 2 * (1 + sum(a.demo is not None for a in ANALYSES.values())) + 1
    assert f"report: {report}" in first.stdout and f"[{phases}/{phases}] rendering the report" in first.stdout
    html = report.read_text()
    assert "<h2>Gaussian noise</h2>" in html and "Made by coanalysis demo (preset smoke" in html
    record = json.loads((tmp_path / "reports" / "demo" / "demo.json").read_text())
    assert record["resumed"] is False and record["skipped"] == [] and len(record["phases"]) == phases
    second = run_cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already trained to step 2; nothing to do") == 2
    assert json.loads((tmp_path / "reports" / "demo" / "demo.json").read_text())["resumed"] is True
    assert second.stdout.split("\nmodel")[1].split("\n(")[0] == first.stdout.split("\nmodel")[1].split("\n(")[0]
