"""The training loop: the run directory it writes, exact resume, and settings refused up front."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.train import train
from tests.conftest import TINY


def test_run_directory_follows_the_contract(tiny_runs):
    run = tiny_runs["co-byol"]
    assert {p.name for p in run.iterdir()} >= {"encoder.safetensors", "meta.json", "state.pt"}
    meta = json.loads((run / "meta.json").read_text())
    for key in ("schema_version", "arch", "method", "config", "normalization", "dataset", "input_size", "epoch",
                "metrics", "package_version", "git_commit", "encoder_sha256"):
        assert key in meta
    assert meta["method"] == "co-byol" and meta["arch"] == {"name": "resnet10", "kwargs": {"stem": "cifar", "width": 8}}
    assert meta["config"]["local_weight"] == 0.5 and meta["step"] == 2
    weights = load_file(str(run / "encoder.safetensors"))
    assert "conv1.weight" in weights and not any(k.startswith(("backbone.", "module.")) for k in weights)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 2


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    base = {**TINY, "method": "co-byol", "out": str(tmp_path)}
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="straight"))
    train(TrainConfig(**{**base, "max_steps": 2}, run_name="resumed"))
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="resumed", resume=True))
    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "encoder.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_existing_run_without_resume_is_refused(tiny_runs):
    run = tiny_runs["byol"]
    with pytest.raises(UserError, match="--resume"):
        train(TrainConfig(**{**TINY, "method": "byol"}, out=str(run.parent), run_name=run.name))


@pytest.mark.parametrize("change,match", [
    ({"method": "simclr-x"}, "unknown method"),
    ({"arch": "vgg"}, "unknown architecture"),
    ({"local_grid": 9}, "larger than the 4x4"),
    ({"batch_size": 4096}, "fewer than --batch-size"),
    ({"dataset": "nope"}, "unknown dataset"),
])
def test_invalid_settings_fail_before_training(tmp_path, change, match):
    with pytest.raises(UserError, match=match):
        train(TrainConfig(**{**TINY, "method": "co-byol", "out": str(tmp_path), **change}))
    assert not any(tmp_path.iterdir())
