"""`benchmarks/gpu_check.py`: its CPU dry run runs the steps at tiny sizes and prints one table of
every target; (slow) the whole dry run, the shortened demo included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--results", str(tmp_path),
                           *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((tmp_path / "gpu_check-dry-run.json").read_text())


def test_the_dry_run_measures_its_steps_and_prints_every_target(tmp_path):
    from benchmarks.gpu_check import TARGETS

    done, report = _dry_run(tmp_path, "--only", "feature_throughput,train_throughput")
    assert report["outcomes"] == {"train_throughput": "ok", "feature_throughput": "ok",
                                  "train_throughput_vit": "skipped", "feature_throughput_vit": "skipped",
                                  "analysis_throughput": "skipped", "robustness_throughput": "skipped",
                                  "demo": "skipped"}
    rows = {row["target"]: row for row in report["rows"]}
    assert len(rows) == len(TARGETS) and "gpu_check on dry-run" in done.stdout
    measured = rows["extraction / bare forward"]
    assert measured["value"] > 0 and measured["status"] in ("pass", "FAIL")  # a CPU number, judged all the same
    assert rows["ERF / 4 forward+backward"]["status"] == "skipped"
    assert (tmp_path / "train_throughput-dry-run.json").is_file()
    for row in rows.values():  # one table line per target
        assert row["target"] in done.stdout


@pytest.mark.slow
def test_the_whole_dry_run_with_the_demo(tmp_path):
    from tests.datafiles import write_fashion_mnist

    write_fashion_mnist(tmp_path / "fm", n_train=96, n_test=48)
    _, report = _dry_run(tmp_path / "res", "--data-root", str(tmp_path / "fm"))
    assert set(report["outcomes"].values()) == {"ok"}
    assert all(row["value"] is not None for row in report["rows"])
