"""ViTs through the command lines: inspect shows tokens and readout, a bad ViT file is one line,
and (slow) a DINO ViT file and a co-ssl run land in one report."""

from __future__ import annotations

import json

import pytest
import torch

from tests.coanalysis import vit_layouts
from tests.conftest import run_cli


def test_inspect_prints_patch_size_tokens_and_readout(dino_file):
    out = run_cli("coanalysis", "inspect", "--ckpt", str(dino_file), "--input-size", "48", "--global", "cls+avg")
    assert out.returncode == 0, out.stderr
    for text in ("format          dino-vit (branch teacher", "patch 8 px: 36 patch tokens (6 x 6) + 1 prefix",
                 "resampled 4x4 -> 6x6 patches", "readout         cls+avg -> 384 features",
                 "receptive field the whole image", "3 attention heads"):
        assert text in out.stdout, out.stdout


def test_bad_vit_file_is_one_line_exit_2(tmp_path):
    obj, _, _ = vit_layouts.dino_hub()
    obj["blocks.0.attn.relative_position_bias_table"] = torch.zeros(3, 3)
    torch.save(obj, tmp_path / "beit.pth")
    out = run_cli("coanalysis", "inspect", "--ckpt", str(tmp_path / "beit.pth"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "relative position biases (BEiT" in out.stderr


@pytest.mark.slow
def test_dino_vit_and_our_run_in_one_report(dino_file, tiny_runs, tmp_path):
    common = ["--ckpt", str(dino_file), "--ckpt", str(tiny_runs["byol"]), "--dataset", "synthetic", "--n", "64",
              "--n-train", "256", "--out", str(tmp_path / "cmp"), "--no-progress", "--batch-size", "32"]
    for command in (["robustness", "--only", "noise,dropout", "--sigmas", "0,0.1", "--masks", "2"],
                    ["redundancy", "--n-images", "32", "--pairs", "200", "--bootstrap", "20"],
                    ["erf", "--n-images", "2"], ["compare"]):
        out = run_cli("coanalysis", *command, *common)
        assert out.returncode == 0, out.stderr
    report = run_cli("coanalysis", "report", str(tmp_path / "cmp"), "--no-progress")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "dino_vit" in html and "tiny-byol" in html
    models = (tmp_path / "cmp" / "tables" / "models.md").read_text()
    assert "| image |" in models and "global: cls" in models
    redundancy = json.loads((tmp_path / "cmp" / "dino_vit" / "redundancy.json").read_text())["cells"]["pairs"]
    assert redundancy["global"] == "cls" and redundancy["r_null"] is not None
    assert "dino_vit: local–global correlation" in html and "G = the CLS token" in html
    dropout = json.loads((tmp_path / "cmp" / "dino_vit" / "dropout.json").read_text())
    assert dropout["cells"]["spatial p=0"]["family"] == "vit"
