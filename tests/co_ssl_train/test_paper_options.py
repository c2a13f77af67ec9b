"""The CO-SSL paper's options beside our defaults (`--local-target`, `--rf-head`), VICReg's variance
weight in the official code's form, and the recipes' LARS settings with their sources."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from co_ssl_train.checkpoint import META_FILE, load_run_encoder
from co_ssl_train.config import TrainConfig
from co_ssl_train.methods import METHODS
from co_ssl_train.methods.byol import byol_loss
from co_ssl_train.methods.vicreg import covariance_term, variance_term, vicreg_loss
from co_ssl_train.models import build_encoder
from co_ssl_train.recipes import format_recipe, recipe_settings
from co_ssl_train.train import train
from tests.conftest import TINY

RF_MLP = {"rf": 43, "stem": "cifar", "width": 8, "head": "mlp"}


def _co_byol(**kw):
    cfg = TrainConfig(method="co-byol", dataset="synthetic", arch="resnet10", width=8, proj_hidden=32, proj_dim=16,
                      batch_size=8, **kw).resolved(32)
    torch.manual_seed(0)
    encoder = build_encoder(cfg.arch, {"stem": "cifar", "width": 8})
    return METHODS["co-byol"].build(encoder, cfg).train()


def test_local_target_local_regresses_the_momentum_local_projection_of_the_pooled_target_map():
    model = _co_byol(local_target="local")
    with torch.no_grad():  # make the two target heads differ, as they do once training has moved them
        for p in model.target_local_projector.parameters():
            p.add_(0.3 * torch.randn_like(p))
    views = [torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)]
    _, logs = model(views)
    with torch.no_grad():
        online = model.encoder.forward_maps(torch.cat(views), ("layer4",))[0]
        q_a, q_b = model.local(online).chunk(2, dim=1)
        target = model.target_encoder.forward_maps(torch.cat(views), ("layer4",))[0].mean(dim=(2, 3))
        local_z = model.target_local_projector(target).chunk(2)
        global_z = model.target_projector(target).chunk(2)
    expected_local = 0.5 * (byol_loss(q_a, local_z[1]) + byol_loss(q_b, local_z[0]))
    expected_global = 0.5 * (byol_loss(q_a, global_z[1]) + byol_loss(q_b, global_z[0]))
    torch.testing.assert_close(logs["loss_local"], expected_local, rtol=1e-5, atol=1e-6)
    assert abs(float(expected_local) - float(expected_global)) > 1e-3  # the option changes the loss
    model.settings = dataclasses.replace(model.settings, target="global")
    _, logs = model(views)
    torch.testing.assert_close(logs["loss_local"], expected_global, rtol=1e-5, atol=1e-6)


def test_rf_head_mlp_sits_after_the_pooling_inside_the_encoder():
    torch.manual_seed(0)
    plain = build_encoder("rf_resnet18", {k: v for k, v in RF_MLP.items() if k != "head"})
    headed = build_encoder("rf_resnet18", RF_MLP).train()
    assert headed.receptive_field() == plain.receptive_field() == 43  # the local map is unchanged
    assert any(k.startswith("pooled_head.") for k in headed.backbone.state_dict())
    assert not any(k.startswith("pooled_head.") for k in plain.backbone.state_dict())
    x = torch.rand(4, 3, 32, 32)
    local = headed.forward_local(x)
    torch.testing.assert_close(headed.forward_global(x), headed.backbone.pooled_head(local.mean(dim=(2, 3))))
    assert not torch.allclose(headed.forward_global(x), local.mean(dim=(2, 3)))
    torch.testing.assert_close(headed.forward_global(x, "layer3"), headed.forward_local(x, "layer3").mean(dim=(2, 3)))


def test_vicreg_var_12_5_is_the_official_codes_halved_variance_term():
    torch.manual_seed(0)
    z_a, z_b = torch.randn(16, 8), torch.randn(16, 8)
    official = (25 * torch.nn.functional.mse_loss(z_a, z_b) + 25 * (variance_term(z_a) + variance_term(z_b)) / 2
                + 1 * (covariance_term(z_a) + covariance_term(z_b)))
    torch.testing.assert_close(vicreg_loss(z_a, z_b, 25.0, 12.5, 1.0), official)
    paper = official + 25 * (variance_term(z_a) + variance_term(z_b)) / 2
    torch.testing.assert_close(vicreg_loss(z_a, z_b), paper)


def test_a_run_with_the_paper_options_trains_records_them_and_loads(tmp_path):
    cfg = TrainConfig(**{**TINY, "arch": "rf_resnet18", "rf": 43}, method="co-byol", rf_head="mlp",
                      local_target="local", out=str(tmp_path), run_name="paper")
    run = train(cfg)
    meta = json.loads((run / META_FILE).read_text())
    assert meta["config"]["rf_head"] == "mlp" and meta["config"]["local_target"] == "local"
    assert meta["arch"]["kwargs"]["head"] == "mlp" and meta["local_branch"]["target"] == "local"
    encoder, _, _ = load_run_encoder(run)
    assert getattr(encoder.backbone, "pooled_head", None) is not None
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = encoder.backbone.pooled_head(encoder.forward_local(x).mean(dim=(2, 3)))
        torch.testing.assert_close(encoder.forward_global(x), expected)
    state = torch.load(run / "state.pt", weights_only=True)["method"]
    moved = [k for k in state if k.startswith("encoder.backbone.pooled_head.") and k.endswith("weight")]
    assert moved and all(torch.equal(state[k], encoder.backbone.state_dict()[k.removeprefix("encoder.backbone.")])
                         for k in moved)


def test_default_runs_store_no_trace_of_the_new_options(tiny_runs):
    meta = json.loads((tiny_runs["co-byol"] / META_FILE).read_text())
    assert not {"rf_head", "local_target", "lars_eta", "lars_clip", "exclude_bias_norm"} & set(meta["config"])
    assert "target" not in meta["local_branch"] and "head" not in meta["arch"]["kwargs"]


@pytest.mark.parametrize("method,source", [("byol", "BYOL paper"), ("co-byol", "BYOL paper"),
                                           ("simclr", "SimCLR paper"), ("mocov3", "MoCo v3 code"),
                                           ("dino", "DINO code"), ("vicreg", "VICReg code")])
def test_imagenet1k_lars_is_the_papers_eta_1e_3_without_clipping(method, source):
    settings = {flag: (value, src) for flag, value, src in recipe_settings("imagenet1k", method)}
    assert settings["--lars-eta"] == ("1e-3", source)
    assert settings["--no-lars-clip"] == (None, source) and settings["--exclude-bias-norm"] == (None, source)
    assert "--lars-eta                   1e-3       " + source in format_recipe("imagenet1k", method)


@pytest.mark.parametrize("recipe", ["cifar10", "fashion-mnist", "imagenet100"])
def test_solo_learn_recipes_use_its_lars_eta_0_02_with_clipping(recipe):
    settings = {flag: (value, src) for flag, value, src in recipe_settings(recipe, "co-byol")}
    assert settings["--lars-eta"] == ("0.02", "solo-learn") and settings["--lars-clip"] == (None, "solo-learn")
    assert settings["--exclude-bias-norm"] == (None, "solo-learn")
