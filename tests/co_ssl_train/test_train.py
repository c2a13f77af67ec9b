"""The training loop: the run directory it writes, exact resume, and settings refused up front."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.checkpoint import load_run_encoder
from co_ssl_train.methods import METHODS
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


# small and fast: 16 images a batch, 2 steps an epoch, so 2 + 2 steps also crosses an epoch boundary
RESUME = {**TINY, "batch_size": 16, "subset": 32, "width": 4, "dino_prototypes": 32, "patches": 3,
          "warmup_epochs": 1.0, "epochs": 3}


@pytest.mark.parametrize("method", list(METHODS))
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, method):
    base = {**RESUME, "method": method, "out": str(tmp_path)}
    if method == "byol-mc":
        base["local_crops"] = 2
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="straight"))
    train(TrainConfig(**{**base, "max_steps": 2}, run_name="resumed"))
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="resumed", resume=True))
    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "encoder.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = (torch.load(tmp_path / r / "state.pt", weights_only=True) for r in ("straight", "resumed"))
    for k in sa["method"]:  # heads, targets, DINO's center: everything
        assert torch.equal(sa["method"][k], sb["method"][k]), k
    assert [h["loss"] for h in sa["history"]] == [h["loss"] for h in sb["history"]]


def test_existing_run_without_resume_is_refused(tiny_runs):
    run = tiny_runs["byol"]
    with pytest.raises(UserError, match="--resume"):
        train(TrainConfig(**{**TINY, "method": "byol"}, out=str(run.parent), run_name=run.name))


@pytest.mark.parametrize("change,match", [
    ({"method": "simclr-x"}, "unknown method"),
    ({"arch": "vgg"}, "unknown architecture"),
    ({"local_grid": 9}, "larger than the 4x4"),
    ({"local_grid": 9, "local_layer": "layer3"}, "larger than the 8x8 layer3"),
    ({"batch_size": 4096}, "fewer than --batch-size"),
    ({"dataset": "nope"}, "unknown dataset"),
    ({"arch": "rf_resnet18", "rf": 30}, "cannot be reached"),
    ({"arch": "resnet10", "rf": 43}, "applies to rf_resnet18 only"),
    ({"method": "simclr", "local_crops": 2}, "multi-crop is offered for byol-mc, dino, co-dino"),
    ({"method": "byol-mc", "local_crops": 0}, "byol-mc needs --local-crops"),
    ({"method": "bagssl", "patch_size": 40}, "--patch-size must be in"),
    ({"method": "co-byol", "shared_heads": True, "local_layer": "layer3"}, "shared local/global heads"),
    ({"sync_bn": True}, "--sync-bn needs torchrun"),
    ({"ema_end": 0.5}, "--ema-end"),
])
def test_invalid_settings_fail_before_training(tmp_path, change, match):
    with pytest.raises(UserError, match=match):
        train(TrainConfig(**{**TINY, "method": "co-byol", "out": str(tmp_path), **change}))
    assert not any(tmp_path.iterdir())


def test_batch_that_does_not_divide_by_the_world_size_is_refused():
    with pytest.raises(UserError, match="does not divide by the 3 processes"):
        TrainConfig(**TINY).resolved(32, world_size=3)
    assert TrainConfig(**TINY).resolved(32, world_size=4).batch_size == 32


@pytest.mark.parametrize("arch,kwargs", [("rf_resnet18", {"rf": 29}), ("bagnet9", {})])
def test_new_archs_round_trip_through_the_checkpoint_contract(tmp_path, arch, kwargs):
    run = train(TrainConfig(**{**TINY, "method": "byol", "arch": arch, "width": 4, "batch_size": 16, "subset": 32,
                               "max_steps": 1, "out": str(tmp_path), "run_name": "r", **kwargs}))
    encoder, meta, _ = load_run_encoder(run)  # rebuilt from meta.json's arch name and kwargs alone
    assert meta["arch"]["name"] == arch and encoder.receptive_field() == meta["receptive_field"]
    assert encoder.receptive_field() == {"rf_resnet18": 29, "bagnet9": 9}[arch]
    assert encoder.forward_local(torch.rand(2, 3, 32, 32)).shape[:2] == (2, encoder.num_features)


def test_meta_describes_the_local_branch_and_the_bag_readout(tmp_path):
    small = {**TINY, "width": 4, "batch_size": 16, "subset": 32, "max_steps": 1, "out": str(tmp_path)}
    co = train(TrainConfig(**small, method="co-byol", local_layer="layer3", local_grid=2, run_name="co"))
    meta = json.loads((co / "meta.json").read_text())
    assert meta["local_branch"] == {"weight": 0.5, "form": "additive", "grid": 2, "layer": "layer3",
                                    "shared_heads": False, "mlp_after_pool": True, "stage": "layer3"}
    assert meta["local_layer"] == "layer4"  # the exported encoder's map is the final stage
    bag = train(TrainConfig(**small, method="bagssl", patches=3, run_name="bag"))
    meta = json.loads((bag / "meta.json").read_text())
    assert meta["representation"]["kind"] == "bag-of-patches" and meta["representation"]["patch_size"] == 16
    assert meta["views"] == [{"size": 16, "count": 3, "scale": [0.25, 0.25]}]


def test_knn_monitor_is_logged_every_k_epochs(tmp_path):
    run = train(TrainConfig(**{**TINY, "method": "byol", "width": 4, "batch_size": 16, "subset": 32, "epochs": 2,
                               "max_steps": None, "knn_every": 2, "knn_bank": 32, "knn_queries": 64,
                               "out": str(tmp_path), "run_name": "knn"}))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and "knn_top1_k20" not in log[0]
    acc = log[1]["knn_top1_k20"]
    assert 0.0 <= acc <= 1.0 and acc * 64 == pytest.approx(round(acc * 64))  # a fraction of the 64 queries


def test_a_crash_between_checkpoint_files_leaves_a_loadable_run_that_resumes_exactly(tmp_path, monkeypatch):
    """state.pt is written first and meta.json last: dying in between keeps every file loadable,
    and --resume continues from the newest state as if nothing happened."""
    import co_ssl_train.checkpoint as ckpt

    base = {**RESUME, "method": "co-byol", "out": str(tmp_path), "save_every": 1}
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="straight"))
    real, calls = ckpt.write_json_atomic, []

    def dying_meta_write(path, obj):
        calls.append(path)
        if len(calls) == 3:  # the third save: state.pt and encoder.safetensors of step 3 are written
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(ckpt, "write_json_atomic", dying_meta_write)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**{**base, "max_steps": 4}, run_name="crashed"))
    monkeypatch.setattr(ckpt, "write_json_atomic", real)
    run = tmp_path / "crashed"
    encoder, meta, _ = load_run_encoder(run)
    assert meta["step"] == 2 and meta.get("stale_meta") is True  # newer weights than meta: flagged, not refused
    assert int(torch.load(run / "state.pt", weights_only=True)["step"]) == 3
    assert not list(run.glob(".*.tmp"))
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="crashed", resume=True))
    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(run / "encoder.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_an_unloadable_checkpoint(tmp_path):
    import random
    import subprocess
    import sys
    import time

    from co_ssl_train.checkpoint import load_state

    args = [sys.executable, "-m", "co_ssl_train", "--method", "co-byol", "--dataset", "synthetic", "--arch",
            "resnet10", "--width", "4", "--proj-hidden", "32", "--proj-dim", "16", "--batch-size", "16",
            "--epochs", "2", "--save-every", "1", "--no-progress", "--device", "cpu", "--threads", "1",
            "--out", str(tmp_path), "--run-name", "k", "--resume"]
    rng = random.Random(0)
    run = tmp_path / "k"
    for _ in range(4):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not (run / "meta.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.kill()
        proc.wait()
        load_run_encoder(run)
        assert int(load_state(run)["step"]) >= 1
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(load_state(run)["step"]) == 64  # 512 images / 16 per batch * 2 epochs


@pytest.mark.slow
@pytest.mark.parametrize("method", ["co-byol", "co-dino"])
def test_compiled_training_matches_eager(tmp_path, method):
    """--compile (torch.compile of the method, inductor on CPU) trains like eager: same losses, weights equal up
    to float noise: BatchNorm gradients sum many terms, so rounding moves them by up to ~1% after two steps."""
    base = {**TINY, "method": method, "max_steps": 2, "dino_prototypes": 32, "precision": "fp32", "out": str(tmp_path)}
    train(TrainConfig(**base, run_name="eager"))
    train(TrainConfig(**base, run_name="compiled", compile=True))
    a = load_file(str(tmp_path / "eager" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "compiled" / "encoder.safetensors"))
    for k in a:
        if a[k].is_floating_point():
            assert (a[k] - b[k]).norm() <= 0.05 * a[k].norm() + 1e-6, k
    la, lb = (json.loads((tmp_path / r / "meta.json").read_text())["metrics"]["loss"] for r in ("eager", "compiled"))
    assert la == pytest.approx(lb, rel=1e-4)  # relative: co-dino's loss is about 7.7 here, co-byol's under 1


def test_resuming_a_state_of_other_heads_is_a_user_error(tmp_path):
    base = {**RESUME, "method": "byol", "out": str(tmp_path), "max_steps": 1}
    run = train(TrainConfig(**base, run_name="r"))
    state = torch.load(run / "state.pt", weights_only=True)
    state["method"] = {k.replace("head.0.", "projector."): v for k, v in state["method"].items()}  # older layout
    torch.save(state, run / "state.pt")
    with pytest.raises(UserError, match="start a new --run-name"):
        train(TrainConfig(**{**base, "max_steps": 2}, run_name="r", resume=True))
