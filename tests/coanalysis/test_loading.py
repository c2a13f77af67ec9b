"""`load_encoder`: a ready encoder from a run directory, and one clear error for everything else."""

from __future__ import annotations

import shutil

import pytest
import torch

from coanalysis import load_encoder
from coanalysis.loading import UserError


def test_loads_in_eval_mode_with_its_identity(tiny_runs):
    enc = load_encoder(tiny_runs["co-byol"])
    assert not enc.training
    assert enc.source.format == "co-ssl-run" and enc.source.method == "co-byol"
    assert enc.source.name == "tiny-co-byol" and len(enc.source.content_hash) == 64
    x = torch.rand(2, 3, 32, 32)
    assert enc.forward_local(x).shape == (2, 64, 4, 4)
    # a file inside the run directory designates the run
    again = load_encoder(tiny_runs["co-byol"] / "encoder.safetensors")
    torch.testing.assert_close(enc.forward_global(x), again.forward_global(x), rtol=0, atol=0)


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_encoder(tmp_path / "nope")


def test_foreign_file_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a co-ssl checkpoint"):
        load_encoder(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="not a co-ssl checkpoint"):
        load_encoder(tmp_path)


def test_truncated_weights(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)
    path = run / "encoder.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="truncated"):
        load_encoder(run)
