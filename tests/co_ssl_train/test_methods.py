"""Losses against their published formulas on inputs with known values, and two training steps of
every method in the METHODS table."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from co_ssl_train.config import TrainConfig
from co_ssl_train.ema import ema_update
from co_ssl_train.methods import METHODS
from co_ssl_train.methods.bagssl import bag_loss, bag_of_patches
from co_ssl_train.methods.byol import byol_loss
from co_ssl_train.methods.co import LocalBranch, combine, local_settings
from co_ssl_train.methods.dino import dino_loss, teacher_probabilities, teacher_temperature_schedule
from co_ssl_train.methods.heads import MLP, per_position
from co_ssl_train.methods.mocov3 import mocov3_loss
from co_ssl_train.methods.simclr import info_nce, nt_xent
from co_ssl_train.methods.vicreg import covariance_term, variance_term, vicreg_loss
from co_ssl_train.methods.views import cross_view_mean
from co_ssl_train.models import build_encoder
from co_ssl_train.schedules import cosine, ema_momentum
from co_ssl_train.batches import make_views

# ---- BYOL ------------------------------------------------------------------------------------


def test_byol_loss_known_values():
    z = torch.randn(5, 8)
    assert byol_loss(z, z).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(-2 * z, z).item() == pytest.approx(4.0, abs=1e-6)
    e1, e2 = torch.eye(8)[:1], torch.eye(8)[1:2]
    assert byol_loss(e1, e2).item() == pytest.approx(2.0, abs=1e-6)


def test_local_loss_is_the_mean_over_positions():
    p = torch.randn(4, 3, 6)  # (positions, batch, dim)
    z = torch.randn(3, 6)
    by_position = torch.stack([byol_loss(p[i], z) for i in range(4)]).mean()
    torch.testing.assert_close(byol_loss(p, z), by_position)
    assert byol_loss(z.expand(4, 3, 6), z).item() == pytest.approx(0.0, abs=1e-6)


def test_byol_loss_sends_no_gradient_into_the_target():
    p, z = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_combine_forms():
    g, loc = torch.tensor(1.0), torch.tensor(3.0)
    assert combine(g, loc, 0.5, "additive").item() == pytest.approx(2.5)
    assert combine(g, loc, 0.25, "convex").item() == pytest.approx(0.75 * 1 + 0.25 * 3)


def test_cross_view_mean_pairs_every_student_view_with_every_other_teacher_view():
    calls = []
    loss = cross_view_mean(lambda s, t: (calls.append((int(s), int(t))), s * 10 + t)[1],
                           [torch.tensor(0.0), torch.tensor(1.0), torch.tensor(2.0)], [torch.tensor(0.0), torch.tensor(1.0)])
    assert sorted(calls) == [(0, 1), (1, 0), (2, 0), (2, 1)]
    assert loss.item() == pytest.approx((1 + 10 + 20 + 21) / 4)


# ---- contrastive -------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_closed_form(tau):
    # two images, orthogonal embeddings, the two views of an image identical: each anchor has the
    # positive at cos 1 and two negatives at cos 0 -> loss log(1 + 2 exp(-1/tau))
    z = torch.eye(2)
    assert nt_xent(z, z, tau).item() == pytest.approx(math.log(1 + 2 * math.exp(-1 / tau)), rel=1e-5, abs=1e-6)


def test_nt_xent_matches_the_published_formula():
    torch.manual_seed(0)
    za, zb, tau = torch.randn(5, 7), torch.randn(5, 7), 0.3
    z = F.normalize(torch.cat([za, zb]), dim=1)
    n = 5
    terms = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        denom = sum(math.exp(float(z[i] @ z[k]) / tau) for k in others)
        terms.append(-math.log(math.exp(float(z[i] @ z[j]) / tau) / denom))
    assert nt_xent(za, zb, tau).item() == pytest.approx(sum(terms) / (2 * n), rel=1e-5)


def test_info_nce_closed_form_and_positions():
    q = torch.eye(3)  # each query equals its key, orthogonal to the others
    tau = 0.2
    expected = math.log(1 + 2 * math.exp(-1 / tau))  # 0.0135
    assert info_nce(q, q, tau).item() == pytest.approx(expected, rel=1e-5)
    assert info_nce(q.expand(4, 3, 3), q, tau).item() == pytest.approx(expected, rel=1e-5)


def test_mocov3_loss_is_2_tau_times_cross_entropy():
    q, k, tau = torch.eye(4), torch.eye(4), 0.2
    assert mocov3_loss(q, k, tau).item() == pytest.approx(2 * tau * math.log(1 + 3 * math.exp(-1 / tau)), rel=1e-5)
    kk = torch.randn(4, 4, requires_grad=True)
    mocov3_loss(torch.randn(4, 4, requires_grad=True), kk, tau).backward()
    assert kk.grad is None  # momentum keys get no gradient


# ---- DINO ------------------------------------------------------------------------------------


def test_dino_loss_known_values():
    k = 6
    uniform = torch.full((3, k), 1 / k)
    assert dino_loss(torch.zeros(3, k), uniform, 0.1).item() == pytest.approx(math.log(k), rel=1e-6)
    logits = torch.randn(3, k)
    onehot = F.one_hot(torch.tensor([0, 2, 5]), k).float()
    expected = -F.log_softmax(logits / 0.1, dim=1)[torch.arange(3), torch.tensor([0, 2, 5])].mean()
    assert dino_loss(logits, onehot, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_teacher_centering_and_sharpening():
    t = torch.randn(4, 5)
    probs = teacher_probabilities(t, t, torch.tensor(0.04))  # logits minus themselves: uniform
    torch.testing.assert_close(probs, torch.full((4, 5), 0.2))
    sharp = teacher_probabilities(t, torch.zeros(1, 5), torch.tensor(0.04))
    torch.testing.assert_close(sharp, F.softmax(t / 0.04, dim=1))


def test_teacher_temperature_schedule():
    s = teacher_temperature_schedule(0.04, 0.07, 3, 6)
    torch.testing.assert_close(s, torch.tensor([0.04, 0.055, 0.07, 0.07, 0.07, 0.07], dtype=torch.float64))


# ---- VICReg and BagSSL ---------------------------------------------------------------------------


def test_vicreg_terms_known_values():
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # var 2 per dim, covariance 2 off the diagonal
    assert covariance_term(z).item() == pytest.approx(2 * 2 ** 2 / 2)  # (C01^2 + C10^2) / D
    assert variance_term(z).item() == pytest.approx(0.0)  # std sqrt(2) > 1
    const = torch.ones(5, 3)
    assert variance_term(const).item() == pytest.approx(1 - math.sqrt(1e-4), rel=1e-6)
    assert vicreg_loss(z, z, 25, 25, 1).item() == pytest.approx(2 * 4.0)  # invariance 0, variance 0


@pytest.mark.parametrize("n,d", [(6, 16), (16, 6)])  # Gram route (N < D) and covariance route
def test_covariance_term_matches_the_direct_formula(n, d):
    torch.manual_seed(0)
    z = torch.randn(3, n, d)
    direct = []
    for zi in z:
        c = torch.cov(zi.T)
        direct.append(((c ** 2).sum() - (c.diagonal() ** 2).sum()) / d)
    torch.testing.assert_close(covariance_term(z), torch.stack(direct).mean(), rtol=1e-5, atol=1e-6)


def test_bag_loss_invariance_equals_the_pairwise_form():
    torch.manual_seed(0)
    k = 4
    z = torch.randn(k, 8, 5)
    inv = bag_loss(z, 1.0, 0.0, 0.0)
    pairs = torch.stack([((z[a] - z[b]) ** 2).mean() for a in range(k) for b in range(k) if a != b]).mean()
    assert pairs.item() == pytest.approx(2 * k / (k - 1) * inv.item(), rel=1e-5)
    assert bag_loss(z[:1].expand(k, 8, 5), 1.0, 0.0, 0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_bag_of_patches_is_the_mean_of_patch_embeddings():
    enc = build_encoder("bagnet9", {"width": 4}).eval()
    x = torch.rand(2, 3, 16, 16)
    patches = [x[:, :, i:i + 8, j:j + 8] for i in (0, 4, 8) for j in (0, 4, 8)]
    expected = torch.stack([enc.forward_global(p) for p in patches]).mean(0)
    torch.testing.assert_close(bag_of_patches(enc, x, 8), expected, rtol=1e-4, atol=1e-5)  # batch-size fp noise


# ---- schedules and EMA ---------------------------------------------------------------------------


def test_ema_update_formula():
    online = torch.nn.Linear(3, 2)
    target = copy.deepcopy(online)
    with torch.no_grad():
        target.weight.fill_(1.0)
    before = target.weight.clone()
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.weight, 0.9 * before + 0.1 * online.weight)


def test_momentum_and_weight_decay_schedules():
    m = ema_momentum(0.99, 100)
    assert m[0].item() == pytest.approx(0.99) and m[-1].item() == pytest.approx(1.0, abs=1e-5)
    assert bool((m[1:] >= m[:-1]).all())
    wd = cosine(0.04, 0.4, 10)  # the half cosine reaches the end value at step 10
    assert wd[0].item() == pytest.approx(0.04) and wd[5].item() == pytest.approx(0.22)
    torch.testing.assert_close(cosine(1e-5, 1e-5, 7), torch.full((7,), 1e-5, dtype=torch.float64))


# ---- the local branch ----------------------------------------------------------------------------


def test_per_position_head_equals_a_1x1_convolution_mlp():
    torch.manual_seed(0)
    mlp = MLP(6, 10, 4).train()
    x = torch.randn(3, 6, 2, 2)
    conv = torch.nn.Sequential(torch.nn.Conv2d(6, 10, 1), torch.nn.BatchNorm2d(10), torch.nn.ReLU(),
                               torch.nn.Conv2d(10, 4, 1)).train()
    with torch.no_grad():
        conv[0].weight.copy_(mlp[0].weight[:, :, None, None])
        conv[0].bias.copy_(mlp[0].bias)
        conv[3].weight.copy_(mlp[3].weight[:, :, None, None])
        conv[3].bias.copy_(mlp[3].bias)
    expected = conv(x).flatten(2).permute(2, 0, 1)  # (positions, batch, dim)
    torch.testing.assert_close(per_position(mlp, x), expected, rtol=1e-4, atol=1e-5)


def _cfg(method: str, **kw) -> TrainConfig:
    base = dict(method=method, dataset="synthetic", arch="resnet10", width=8, proj_hidden=32, proj_dim=16,
                dino_prototypes=32, batch_size=8, patches=3, local_crops=None)
    return TrainConfig(**{**base, **kw}).resolved(32)


def test_local_branch_pools_to_the_grid_and_shares_heads_on_request():
    cfg = _cfg("co-byol", local_grid=2)
    head = MLP(64, 32, 16)
    branch = LocalBranch(head, lambda c: MLP(c, 32, 16), 64, 64, local_settings(cfg, True))
    assert branch(torch.randn(4, 64, 4, 4)).shape == (4, 4, 16)  # 2x2 positions
    assert sum(p.numel() for p in branch.parameters()) > 0
    shared = LocalBranch(head, lambda c: MLP(c, 32, 16), 64, 64, local_settings(_cfg("co-byol", shared_heads=True), True))
    assert sum(p.numel() for p in shared.parameters()) == 0 and shared._shared_head[0] is head


# ---- every method trains -----------------------------------------------------------------------


def _two_steps(cfg: TrainConfig):
    torch.manual_seed(0)
    spec = METHODS[cfg.method]
    method = spec.build(build_encoder("resnet10", {"stem": "cifar", "width": 8}), cfg)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    start = copy.deepcopy(method.state_dict())
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    views = make_views(images, spec.views(cfg), torch.Generator().manual_seed(0), channels_last=False)
    for _ in range(2):
        loss, logs = method(views)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if spec.momentum:
            method.momentum_update(0.99)
    return method, start, logs, views


@pytest.mark.parametrize("name", list(METHODS))
def test_two_steps_change_the_weights_and_keep_the_loss_finite(name):
    cfg = _cfg(name)
    method, start, logs, views = _two_steps(cfg)
    spec = METHODS[name]
    assert ("loss_local" in logs) == spec.co
    after = method.state_dict()
    assert not torch.equal(start["encoder.backbone.conv1.weight"], after["encoder.backbone.conv1.weight"])
    if spec.momentum:
        assert not torch.equal(start["target_encoder.backbone.conv1.weight"],
                               after["target_encoder.backbone.conv1.weight"])
    # every trained parameter received a gradient (DDP needs no unused parameters)
    assert all(p.grad is not None for m in method.online_modules() for p in m.parameters() if p.requires_grad)
    expected_views = {"bagssl": 3, "byol-mc": 8}.get(name, 2)
    assert len(views) == expected_views


@pytest.mark.parametrize("change", [{"shared_heads": True}, {"mlp_after_pool": False}, {"local_layer": "layer3"},
                                    {"local_grid": 2, "weight_form": "convex"}])
@pytest.mark.parametrize("name", ["co-byol", "co-dino"])
def test_co_ablations_train(name, change):
    method, start, logs, _ = _two_steps(_cfg(name, **change))
    assert "loss_local" in logs
    if change.get("shared_heads") or change.get("mlp_after_pool") is False:
        assert method.local.head is None and method.local._shared_head[0] is method.head


def test_multi_crop_views_have_their_own_size():
    cfg = _cfg("byol-mc", local_crops=3, local_crop_size=12)
    views = make_views(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), METHODS["byol-mc"].views(cfg),
                       torch.Generator().manual_seed(0), channels_last=False)
    assert [v.shape[-1] for v in views] == [32, 32, 12, 12, 12]
