"""The checkpoint contract: round trip, damage and foreign files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from co_ssl_train.checkpoint import load_run_encoder, load_state, read_meta
from co_ssl_train.errors import UserError


def test_round_trip_gives_identical_outputs(tiny_runs, tmp_path):
    from co_ssl_train.config import TrainConfig
    from co_ssl_train.data import load_dataset

    encoder, meta, digest = load_run_encoder(tiny_runs["byol"])
    assert not encoder.training and len(digest) == 64
    # rebuild the encoder from the resume state: same weights, same outputs
    state = load_state(tiny_runs["byol"])
    from co_ssl_train.models import build_encoder

    cfg = TrainConfig.from_json(meta["config"])
    again = build_encoder(cfg.arch, meta["arch"]["kwargs"], mean=meta["normalization"]["mean"],
                          std=meta["normalization"]["std"])
    again.backbone.load_state_dict({k[len("encoder.backbone."):]: v for k, v in state["method"].items()
                                    if k.startswith("encoder.backbone.")})
    x = load_dataset("synthetic", "test").images[:8].float() / 255
    torch.testing.assert_close(encoder.forward_local(x), again.eval().forward_local(x), rtol=0, atol=0)


def test_truncated_weights_are_a_user_error(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)
    data = (run / "encoder.safetensors").read_bytes()
    (run / "encoder.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match="truncated"):
        load_run_encoder(run)


def test_newer_schema_and_foreign_meta_are_refused(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "schema_version": 99}))
    with pytest.raises(UserError, match="newer"):
        read_meta(run)
    (run / "meta.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="not a co-ssl meta.json"):
        read_meta(run)
    (run / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        read_meta(run)


def test_unknown_architecture_in_meta(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)
    meta = json.loads((run / "meta.json").read_text())
    meta["arch"]["name"] = "convnext_tiny"
    (run / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="unknown architecture 'convnext_tiny'"):
        load_run_encoder(run)


def test_state_file_with_code_is_refused(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)

    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"step": Payload()}, run / "state.pt")
    with pytest.raises(UserError, match="cannot be read safely"):
        load_state(run)
