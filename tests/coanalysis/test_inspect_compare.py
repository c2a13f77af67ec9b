"""`coanalysis inspect`, `probe` and `compare` as a user runs them, on our runs and third-party files."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import run_cli
from tests.coanalysis.layouts import random_resnet, write_layout

RESNET18_TRUNK_PARAMETERS = 11_689_512 - (512 * 1000 + 1000)  # torchvision resnet18 without its fc


@pytest.fixture(scope="module")
def moco_file(tmp_path_factory):
    return write_layout("moco", random_resnet("resnet18"), "resnet18", tmp_path_factory.mktemp("moco"))


def test_inspect_json_of_a_third_party_checkpoint(moco_file):
    out = run_cli("coanalysis", "inspect", "--ckpt", str(moco_file), "--input-size", "64", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["format"] == "moco" and report["arch"] == "resnet18" and report["arch_kwargs"] == {"stem": "imagenet"}
    assert report["parameters"] == RESNET18_TRUNK_PARAMETERS and report["num_features"] == 512
    assert report["local_map_shape"] == [512, 2, 2] and report["input_size"] == 64
    assert report["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert "module.queue" in report["dropped_keys"] and "module.encoder_k.*" in report["dropped_summary"]
    assert report["content_hash"] == hashlib.sha256(moco_file.read_bytes()).hexdigest()


def test_inspect_text_of_a_run_with_overrides(tiny_runs):
    out = run_cli("coanalysis", "inspect", "--ckpt", str(tiny_runs["co-byol"]), "--mean", "0.5,0.5,0.5",
                  "--std", "0.2,0.2,0.2")
    assert out.returncode == 0, out.stderr
    for text in ("format          co-ssl-run", "resnet10", "local map       64 x 4 x 4 (layer4) at 32 px",
                 "mean [0.5, 0.5, 0.5]", "dropped         0 keys", "sha256"):
        assert text in out.stdout, out.stdout


def test_compare_runs_both_readouts_into_one_report(tiny_runs, moco_file, tmp_path):
    args = ["--ckpt", str(tiny_runs["byol"]), "--ckpt", str(moco_file), "--name", "ours", "--name", "moco",
            "--dataset", "synthetic", "--n", "32", "--n-train", "64", "--knn-k", "5,20", "--out", str(tmp_path / "cmp"),
            "--no-progress"]
    out = run_cli("coanalysis", "compare", *args)
    assert out.returncode == 0, out.stderr
    assert "kNN k=5" in out.stdout and "report written to" in out.stdout
    for name, fmt in (("ours", "co-ssl-run"), ("moco", "moco")):
        probe = json.loads((tmp_path / "cmp" / name / "probe.json").read_text())
        cell = probe["cells"]["test:n=32:seed=0"]
        assert set(cell["knn"]) == {"k=5", "k=20"} and 0 <= cell["knn"]["k=5"] <= 1
        assert cell["knn_protocol"]["temperature"] == 0.07 and probe["model"]["format"] == fmt
        assert probe["protocol"]["encoder"]["format"] == fmt
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "kNN k=5 top-1" in html and "moco" in html and "ours" in html
    again = run_cli("coanalysis", "probe", *args)
    assert again.returncode == 0, again.stderr
    assert "fitting the linear probe" not in again.stdout  # reused, not refitted
    first = [line for line in out.stdout.splitlines() if line.startswith(("ours", "moco"))]
    second = [line for line in again.stdout.splitlines() if line.startswith(("ours", "moco"))]
    assert first == second


@pytest.mark.parametrize("args,expected", [
    (["compare", "--ckpt", "{run}"], "needs --dataset"),
    (["inspect", "--ckpt", "{odd}"], "unknown checkpoint layout"),
    (["probe", "--ckpt", "{run}", "--format", "moco", "--format", "swav"], "2 --format values for 1 --ckpt"),
    (["inspect", "--ckpt", "{run}", "--mean", "0.5,0.5"], "--mean and --std go together"),
    (["inspect", "--ckpt", "{moco}", "--branch", "teacher"], "format moco has no branch 'teacher'"),
])
def test_bad_input_gets_one_line(args, expected, tiny_runs, moco_file, tmp_path):
    import torch

    torch.save({"weights": {"x.y": torch.zeros(1)}}, tmp_path / "odd.pth")
    filled = [a.format(run=tiny_runs["byol"], odd=tmp_path / "odd.pth", moco=moco_file) for a in args]
    out = run_cli("coanalysis", *filled, "--out", str(tmp_path / "res")) if filled[0] != "inspect" \
        else run_cli("coanalysis", *filled)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], out.stderr
