"""`TrainConfig`: validation of every setting before any work (in-process and through the CLI),
"auto" values, the stored form of newer options, and resuming with a changed flag."""

from __future__ import annotations

import dataclasses

import pytest

from co_ssl_train.cli import main
from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError

BASE = dict(dataset="synthetic", arch="resnet10", width=8, batch_size=32, method="co-byol")


@pytest.mark.parametrize("change,words", [
    ({"method": "byol2"}, "unknown method 'byol2'"),
    ({"run_name": "a/b"}, "--run-name 'a/b' is not a valid folder name"),
    ({"run_name": ".hidden"}, "--run-name '.hidden' is not a valid folder name"),
    ({"arch": "vgg16"}, "unknown architecture 'vgg16'"),
    ({"epochs": 0}, "--epochs: expected an integer of at least 1, got 0"),
    ({"batch_size": 1}, "--batch-size: expected an integer of at least 2, got 1"),
    ({"lr": 0.0}, "--lr: expected a finite number > 0, got 0.0"),
    ({"lars_eta": 0.0}, "--lars-eta: expected a finite number > 0, got 0.0"),
    ({"lars_eta": float("inf")}, "--lars-eta must be a finite number, got inf"),
    ({"lr": float("nan")}, "--lr must be a finite number, got nan"),
    ({"weight_decay": -float("inf")}, "--weight-decay must be a finite number, got -inf"),
    ({"weight_decay": -1e-5}, "--weight-decay: expected a finite number >= 0"),
    ({"weight_decay_end": -1.0}, "--weight-decay-end: expected a finite number >= 0"),
    ({"warmup_epochs": -1.0}, "--warmup-epochs: expected a finite number >= 0"),
    ({"proj_dim": 0}, "--proj-dim: expected an integer of at least 1"),
    ({"vicreg_var": -1.0}, "--vicreg-var: expected a finite number >= 0"),
    ({"dino_center_momentum": 1.0}, "--dino-center-momentum must be in [0, 1)"),
    ({"dino_warmup_teacher_epochs": -1.0}, "--dino-warmup-teacher-epochs: expected a finite number >= 0"),
    ({"knn_temperature": 0.0}, "--knn-temperature: expected a finite number > 0"),
    ({"workers": -1}, "--workers: expected an integer of at least 0"),
    ({"min_scale": 1.5}, "--min-scale: expected a finite number > 0 and <= 1"),
    ({"local_weight": 1.5, "weight_form": "convex"}, "--local-weight must be <= 1 in the convex form"),
    ({"ema": 1.0}, "--ema must be in [0, 1)"),
    ({"ema": -0.1}, "--ema: expected a finite number from 0 to 1"),
    ({"ema": 0.99, "ema_end": 0.9}, "--ema-end must be in [--ema, 1]"),
    ({"local_grid": -1}, "--local-grid: expected an integer of at least 0"),
    ({"width": 0}, "--width: expected an integer of at least 1"),
    ({"rf": 43}, "--rf applies to rf_resnet18 only"),
    ({"rf_head": "mlp"}, "--rf-head applies to rf_resnet18 only"),
    ({"arch": "rf_resnet18", "rf_head": "mlp", "mlp_after_pool": False}, "--rf-head mlp needs the heads after pooling"),
    ({"method": "co-simclr", "local_target": "local"}, "--local-target local is offered for co-byol only"),
    ({"method": "byol", "local_target": "local"}, "--local-target local is offered for co-byol only"),
    ({"clip_grad": -1.0}, "--clip-grad: expected a finite number >= 0"),
    ({"vit_patch_size": 8}, "--vit-patch-size applies to ViTs"),
    ({"arch": "vit_tiny", "vit_dim": 10, "vit_heads": 3}, "--vit-dim 10 must be a multiple of --vit-heads 3"),
    ({"arch": "vit_tiny", "image_size": 32, "vit_patch_size": 5}, "--vit-patch-size 5 must divide the 32 px"),
    ({"local_target": "local", "shared_heads": True}, "--local-target local needs the separate local projector"),
    ({"max_steps": 0}, "--max-steps: expected an integer of at least 1"),
    ({"subset": 0}, "--subset: expected an integer of at least 1"),
    ({"method": "simclr", "local_crops": 2}, "multi-crop is offered for"),
    ({"method": "byol-mc", "local_crops": 0}, "byol-mc needs --local-crops"),
    ({"local_crop_scale_min": 0.5, "local_crop_scale_max": 0.4}, "--local-crop-scale-min and --local-crop-scale-max"),
    ({"patches": 1}, "--patches must be at least 2"),
    ({"temperature": 0.0}, "--temperature: expected a finite number > 0"),
    ({"dino_prototypes": 1}, "--dino-prototypes must be at least 2"),
    ({"knn_k": 0}, "--knn-k"),
    ({"dist_timeout": 0.0}, "--dist-timeout: expected a finite number > 0"),
    ({"save_every": -1}, "--save-every: expected an integer of at least 0"),
    ({"threads": -2}, "--threads: expected an integer of at least 0"),
    ({"image_size": 0}, "--image-size: expected an integer of at least 8"),
    ({"image_size": 32, "patch_size": 40}, "--patch-size must be in [4, 32]"),
    ({"image_size": 32, "local_crop_size": 64}, "--local-crop-size must be in [0, 32]"),
])
def test_validate_refuses_each_bad_setting_naming_its_flag(change, words):
    with pytest.raises(UserError) as info:
        TrainConfig(**{**BASE, **change}).validate()
    assert words in str(info.value) and "\n" not in str(info.value)


def test_checks_that_need_the_image_size_or_world_size_wait_for_them():
    cfg = TrainConfig(**BASE, patch_size=40)
    cfg.validate()  # image size unknown until the dataset is opened
    with pytest.raises(UserError, match=r"--patch-size must be in \[4, 32\]"):
        cfg.validate(image_size=32)
    with pytest.raises(UserError, match="does not divide by the 3 processes"):
        TrainConfig(**BASE).validate(world_size=3)
    TrainConfig(**BASE).validate(image_size=32, world_size=4)


def test_resolved_decides_the_auto_values_from_the_image_size():
    small = TrainConfig(**BASE).resolved(32)
    assert (small.stem, small.blur, small.image_size, small.patch_size, small.local_crops) == \
        ("cifar", "off", 32, 16, 0)
    big = TrainConfig(**{**BASE, "method": "byol-mc"}).resolved(224)
    assert (big.stem, big.blur, big.patch_size, big.local_crops) == ("imagenet", "on", 112, 6)


def test_newer_options_are_stored_only_when_set_and_read_back_with_their_default():
    default = TrainConfig(**BASE)
    stored = default.to_json()
    for name in ("lars_eta", "lars_clip", "exclude_bias_norm", "local_target", "rf_head"):
        assert name not in stored  # a run that does not use them stores what older versions stored
    assert stored["lr"] == 1.0 and stored["vicreg_var"] == 25.0
    assert TrainConfig.from_json(stored) == default
    changed = dataclasses.replace(default, lars_eta=1e-3, lars_clip=True, local_target="local")
    assert {k: changed.to_json()[k] for k in ("lars_eta", "lars_clip", "local_target")} == \
        {"lars_eta": 1e-3, "lars_clip": True, "local_target": "local"}
    assert TrainConfig.from_json(changed.to_json()) == changed


def test_resuming_refuses_a_changed_setting_but_takes_execution_ones():
    stored = TrainConfig(**BASE, lr=0.5).to_json()
    merged = TrainConfig(**BASE, max_steps=9, lr=0.5).merged_for_resume(stored)
    assert merged.max_steps == 9 and merged.lr == 0.5
    with pytest.raises(UserError, match="--lars-eta 0.001 differs from the run's 0.02"):
        TrainConfig(**BASE, lars_eta=1e-3).merged_for_resume(stored)


@pytest.mark.parametrize("argv,words", [
    (["--lars-eta", "0"], "--lars-eta: expected a finite number > 0, got 0"),  # argparse, through RANGES
    (["--method", "co-simclr", "--local-target", "local"], "--local-target local is offered for co-byol only"),
    (["--rf-head", "mlp"], "--rf-head applies to rf_resnet18 only"),
    (["--ema", "0.99", "--ema-end", "0.9"], "--ema-end must be in [--ema, 1]"),
    (["--patches", "1"], "--patches must be at least 2"),
])
def test_the_cli_validates_before_reading_any_data(tmp_path, capsys, argv, words):
    # the dataset folder does not exist: only a check made before any work can give this message
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "cifar10", "--data-root", str(tmp_path / "absent"), "--out", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "out").exists()
