"""Losses against their formulas, and two training steps of every method."""

from __future__ import annotations

import copy

import pytest
import torch

from co_ssl_train.config import TrainConfig
from co_ssl_train.ema import ema_update
from co_ssl_train.methods import METHODS
from co_ssl_train.methods.byol import byol_local_loss, byol_loss, combine
from co_ssl_train.models import build_encoder


def test_byol_loss_known_values():
    z = torch.randn(5, 8)
    assert byol_loss(z, z).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(-2 * z, z).item() == pytest.approx(4.0, abs=1e-6)
    e1, e2 = torch.eye(8)[:1], torch.eye(8)[1:2]
    assert byol_loss(e1, e2).item() == pytest.approx(2.0, abs=1e-6)


def test_local_loss_is_the_mean_over_positions():
    p = torch.randn(3, 6, 2, 2)
    z = torch.randn(3, 6)
    by_position = torch.stack([byol_loss(p[:, :, i, j], z) for i in range(2) for j in range(2)]).mean()
    torch.testing.assert_close(byol_local_loss(p, z), by_position)
    # a local map whose vectors all equal the global target has zero loss
    assert byol_local_loss(z[:, :, None, None].expand(3, 6, 2, 2), z).item() == pytest.approx(0.0, abs=1e-6)


def test_combine_forms():
    g, loc = torch.tensor(1.0), torch.tensor(3.0)
    assert combine(g, loc, 0.5, "additive").item() == pytest.approx(2.5)
    assert combine(g, loc, 0.25, "convex").item() == pytest.approx(0.75 * 1 + 0.25 * 3)


def test_ema_update_formula():
    online = torch.nn.Linear(3, 2)
    target = copy.deepcopy(online)
    with torch.no_grad():
        target.weight.fill_(1.0)
    before = target.weight.clone()
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.weight, 0.9 * before + 0.1 * online.weight)


@pytest.mark.parametrize("name", list(METHODS))
def test_two_steps_change_the_weights_and_keep_the_loss_finite(name):
    torch.manual_seed(0)
    cfg = TrainConfig(method=name, proj_hidden=32, proj_dim=16)
    method = METHODS[name].build(build_encoder("resnet10", {"stem": "cifar", "width": 8}), cfg)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    start = copy.deepcopy(method.state_dict())
    views = [torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)]
    for _ in range(2):
        loss, logs = method(views)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.momentum_update(0.99)
    assert ("loss_local" in logs) == METHODS[name].co
    after = method.state_dict()
    assert not torch.equal(start["encoder.backbone.conv1.weight"], after["encoder.backbone.conv1.weight"])
    assert not torch.equal(start["target_encoder.backbone.conv1.weight"], after["target_encoder.backbone.conv1.weight"])
