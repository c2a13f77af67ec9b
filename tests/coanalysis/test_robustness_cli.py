"""`coanalysis robustness` as a user runs it: every analysis on two models with narrowing
options, a pre-rendered set with missing cells (listed, then retried), the report, bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from coanalysis.models.trainer import load_dataset
from tests.conftest import run_cli
from tests.corruption_datafiles import write_cifar_c

NARROW = ["--sigmas", "0,0.2", "--corruptions", "fog,contrast", "--severities", "1,5", "--corruption-n", "32",
          "--masks", "2", "--spatial-ps", "0,1-1/hw", "--channel-ps", "0,0.5", "--noise-alphas", "0,1",
          "--eps", "linf=0,2/255", "--steps", "2", "--pgd-n", "32", "--scales", "1,0.5", "--corruption-workers", "1"]


@pytest.mark.slow
def test_every_analysis_on_two_models_then_the_report(tiny_runs, tmp_path):
    out = tmp_path / "res"
    args = ["coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]), "--ckpt", str(tiny_runs["co-byol"]),
            "--name", "byol", "--name", "co", "--baseline", "co", "--out", str(out), "--no-progress",
            "--batch-size", "64", "--corruption-cache", str(tmp_path / "cache"), *NARROW]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    for name in ("byol", "co"):
        for analysis in ("noise", "corruptions", "dropout", "pgd", "crops"):
            result = json.loads((out / name / f"{analysis}.json").read_text())
            assert result["complete"], (name, analysis)
    corruptions = json.loads((out / "byol" / "corruptions.json").read_text())
    assert list(corruptions["cells"]) == ["clean", "fog/1", "fog/5", "contrast/1", "contrast/5"]
    assert corruptions["cells"]["fog/5"]["n"] == 32
    assert "co corruptions: clean" in done.stdout and "mCE 100.0% relative to co" in done.stdout
    stored = {path: path.read_text() for path in out.glob("*/*.json")}
    again = run_cli(*args)  # everything is stored: nothing is recomputed, no file changes
    assert again.returncode == 0 and {path: path.read_text() for path in out.glob("*/*.json")} == stored
    report = run_cli("coanalysis", "report", str(out), "--baseline", "co")
    assert report.returncode == 0, report.stderr
    html = (out / "report.html").read_text()
    for title in ("Common corruptions", "Internal corruption of the local representations",
                  "Adversarial robustness (PGD)", "Parts versus whole: crop-scale accuracy"):
        assert f"<h2>{title}</h2>" in html
    # noise, 2 heatmaps, spatial / channel / noise dropout, L-inf PGD, crops
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 8
    assert "mCE" in html and "relative to co" in html


def test_a_pre_rendered_set_runs_what_exists_lists_what_is_missing_and_retries_it(tiny_runs, tmp_path):
    labels = load_dataset("synthetic", "test").labels.numpy()
    root = tmp_path / "SYN-C"
    write_cifar_c(root, labels, ["fog"], severities=5)
    write_cifar_c(root, labels, ["snow"], severities=2)
    out = tmp_path / "res"
    args = ["coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]), "--name", "byol", "--only", "corruptions",
            "--corruptions-from", str(root), "--corruptions", "fog,snow,frost", "--severities", "1,3",
            "--out", str(out), "--no-progress", "--batch-size", "64"]
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "missing in the pre-rendered set: snow/3, frost/1, frost/3" in done.stdout
    cells = json.loads((out / "byol" / "corruptions.json").read_text())["cells"]
    assert cells["snow/3"]["missing"] and cells["snow/3"]["accuracy"] is None and cells["fog/3"]["n"] == 256
    assert cells["fog/1"]["alignment"] == "rows of the evaluation subset"
    write_cifar_c(root, labels, ["snow", "frost"], severities=5)
    done = run_cli(*args)
    assert done.returncode == 0 and "missing" not in done.stdout
    again = json.loads((out / "byol" / "corruptions.json").read_text())["cells"]
    assert again["fog/1"] == cells["fog/1"]  # kept, not recomputed
    assert all(c["accuracy"] is not None for c in again.values()) and np.isfinite(again["frost/3"]["accuracy"])


BAD = {
    "unknown analysis": (["--only", "noise,fgsm"], "unknown analysis fgsm"),
    "unknown corruption": (["--corruptions", "fog,fgo"], "unknown corruption 'fgo'"),
    "severity": (["--severities", "1,7"], "--severities: expected an integer from 1 to 5, got 7"),
    "eps": (["--eps", "linf:0,1"], "write NORM=LIST"),
    "baseline": (["--baseline", "nobody"], "--baseline 'nobody' is not among the models"),
    "scales": (["--scales", "0,1"], "--scales: expected a finite number > 0 and <= 1, got 0"),
    "not a set": (["--corruptions-from", "."], "holds no pre-rendered corruptions"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_options_get_one_line_and_exit_code_2(case, tmp_path, capsys, monkeypatch):
    from coanalysis.cli import main

    monkeypatch.chdir(tmp_path)
    extra, expected = BAD[case]
    with pytest.raises(SystemExit) as exit_code:
        main(["robustness", "--ckpt", str(tmp_path / "any"), *extra, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_code.value.code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0]


@pytest.mark.slow
def test_kill_9_leaves_a_valid_file_and_the_rerun_matches_an_uninterrupted_run(tiny_runs, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    def args(out, cache):
        return ["coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]), "--name", "byol", "--only",
                "corruptions", "--corruptions", "gaussian_noise,fog,pixelate,contrast", "--severities", "1,2,3",
                "--corruption-n", "48", "--out", str(out), "--no-progress", "--batch-size", "64",
                "--corruption-cache", str(cache)]

    assert run_cli(*args(tmp_path / "whole", tmp_path / "c1")).returncode == 0
    path = tmp_path / "cut" / "byol" / "corruptions.json"
    process = subprocess.Popen([sys.executable, "-m", *args(tmp_path / "cut", tmp_path / "c2")],
                               env={**os.environ, "GIT_PYTHON_REFRESH": "quiet"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not (path.is_file() and len(json.loads(path.read_text())["cells"]) >= 4):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes
    process.wait()
    cut = json.loads(path.read_text())  # still valid JSON
    assert 4 <= len(cut["cells"]) and not cut["complete"]
    assert run_cli(*args(tmp_path / "cut", tmp_path / "c2")).returncode == 0

    def cells(folder):
        data = json.loads((folder / "byol" / "corruptions.json").read_text())
        return {k: {f: v for f, v in c.items() if f != "wall_time_s"} for k, c in data["cells"].items()}

    assert cells(tmp_path / "cut") == cells(tmp_path / "whole")
