"""LARS against its formula (trust ratio, momentum, weight decay, exclusion of biases and norms,
solo-learn's clipping), and the parameter groups every optimizer gets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from co_ssl_train.errors import UserError
from co_ssl_train.optim import LARS, build_optimizer, param_groups, set_lr_wd


def _one_param(w: list[float], g: list[float]) -> nn.Parameter:
    p = nn.Parameter(torch.tensor(w, dtype=torch.float64))
    p.grad = torch.tensor(g, dtype=torch.float64)
    return p


def test_one_step_scales_the_decayed_gradient_by_the_trust_ratio():
    # w = (3, 4): ||w|| = 5; g = (1, 0), wd = 0.1: d = (1.3, 0.4), ||d|| = sqrt(1.85)
    p = _one_param([3.0, 4.0], [1.0, 0.0])
    opt = LARS([{"params": [p], "lars_adapt": True}], lr=0.5, weight_decay=0.1, eta=0.02)
    opt.step()
    trust = 0.02 * 5 / math.sqrt(1.3 ** 2 + 0.4 ** 2)
    expected = [3.0 - 0.5 * trust * 1.3, 4.0 - 0.5 * trust * 0.4]
    assert p.detach().tolist() == pytest.approx(expected, rel=1e-12)


def test_momentum_accumulates_the_scaled_steps():
    p = _one_param([3.0, 4.0], [1.0, 0.0])
    opt = LARS([{"params": [p], "lars_adapt": True}], lr=0.1, weight_decay=0.0, momentum=0.9, eta=1e-3)
    w0 = p.detach().clone()
    opt.step()
    first = 1e-3 * w0.norm() / 1.0 * torch.tensor([1.0, 0.0], dtype=torch.float64)
    w1 = w0 - 0.1 * first
    assert torch.allclose(p.detach(), w1, rtol=0, atol=1e-15)
    p.grad = torch.tensor([0.0, 2.0], dtype=torch.float64)
    opt.step()
    second = 1e-3 * w1.norm() / 2.0 * torch.tensor([0.0, 2.0], dtype=torch.float64)
    assert torch.allclose(p.detach(), w1 - 0.1 * (0.9 * first + second), rtol=0, atol=1e-15)


def test_clipping_caps_the_adapted_rate_at_the_global_one():
    # trust = eta ||w|| / ||d|| = 1.0 * 5 / 1 = 5 > lr = 0.5: clipped r = min(5 / 0.5, 1) = 1, step lr * d
    p = _one_param([3.0, 4.0], [1.0, 0.0])
    LARS([{"params": [p], "lars_adapt": True}], lr=0.5, eta=1.0, clip=True).step()
    assert p.detach().tolist() == pytest.approx([2.5, 4.0], rel=1e-12)
    # trust = 0.02 * 5 / 1 = 0.1 < lr = 0.5: r = 0.1 / 0.5 = 0.2, step lr * r * d = trust * d = 0.1 * d
    q = _one_param([3.0, 4.0], [1.0, 0.0])
    LARS([{"params": [q], "lars_adapt": True}], lr=0.5, eta=0.02, clip=True).step()
    assert q.detach().tolist() == pytest.approx([2.9, 4.0], rel=1e-12)
    # without clipping the same case steps lr * trust * d = 0.05 * d
    u = _one_param([3.0, 4.0], [1.0, 0.0])
    LARS([{"params": [u], "lars_adapt": True}], lr=0.5, eta=0.02).step()
    assert u.detach().tolist() == pytest.approx([2.95, 4.0], rel=1e-12)


def test_excluded_groups_take_plain_sgd_steps_without_decay():
    bias = _one_param([3.0, 4.0], [1.0, 0.0])
    opt = LARS([{"params": [bias], "lars_adapt": False, "apply_wd": False}], lr=0.5, weight_decay=0.1, eta=0.02)
    set_lr_wd(opt, 0.5, 0.1)  # the loop's per-step call keeps the excluded group's decay at 0
    assert opt.param_groups[0]["weight_decay"] == 0.0
    opt.step()
    assert bias.detach().tolist() == pytest.approx([2.5, 4.0], rel=1e-12)


def test_zero_weights_fall_back_to_an_unscaled_step():
    p = _one_param([0.0, 0.0], [1.0, 2.0])
    LARS([{"params": [p], "lars_adapt": True}], lr=0.1, eta=0.02, clip=True).step()
    assert p.detach().tolist() == pytest.approx([-0.1, -0.2], rel=1e-12)


def test_param_groups_put_biases_and_norms_apart_unless_told_not_to():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    shared = [net, net[0]]  # a module reached twice is listed once
    groups = param_groups(shared)
    assert [len(g["params"]) for g in groups] == [2, 4]  # two weight matrices; 2 biases + BN weight and bias
    assert groups[0]["lars_adapt"] and groups[0]["apply_wd"] and not groups[1]["lars_adapt"]
    assert all(p.ndim == 1 for p in groups[1]["params"])
    together = param_groups(shared, exclude_bias_norm=False)
    assert [len(g["params"]) for g in together] == [6, 0]


def test_build_optimizer_passes_the_lars_options_and_refuses_unknown_names():
    groups = param_groups([nn.Linear(3, 2)])
    opt = build_optimizer("lars", groups, 1.0, 1e-5, lars_eta=1e-3, lars_clip=True)
    assert isinstance(opt, LARS) and opt.param_groups[0]["eta"] == 1e-3 and opt.param_groups[0]["clip"] is True
    assert isinstance(build_optimizer("sgd", param_groups([nn.Linear(3, 2)]), 0.1, 0.0), torch.optim.SGD)
    with pytest.raises(UserError, match="unknown optimizer 'adam'"):
        build_optimizer("adam", param_groups([nn.Linear(3, 2)]), 0.1, 0.0)
