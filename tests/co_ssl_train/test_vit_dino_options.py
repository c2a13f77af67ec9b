"""DINO's ViT options: stochastic depth in the student only (`--drop-path`, DINO's drop_path_rate) and
the prototype layer's weight norm with g fixed at 1 or trained (`--norm-last-layer`, DINO's
norm_last_layer), checked on a tiny ViT against what DINO's code does."""

from __future__ import annotations

import pytest
import torch
from timm.layers import DropPath
from torch import nn

from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.methods import METHODS, build_method
from co_ssl_train.models import build_encoder
from co_ssl_train.train import training_step
from tests.co_ssl_train.test_vit_training import VIT, _cfg


def _dino(**kw):
    """co-dino on a tiny ViT (2 blocks, 24 wide, 4x4 tokens), built as training builds it."""
    torch.manual_seed(0)
    cfg = _cfg("co-dino", head_bn=False, **kw)
    return build_method(METHODS["co-dino"], build_encoder("vit_tiny", {**VIT, "readout": "cls"}), cfg), cfg


def _views(n: int = 2) -> list[torch.Tensor]:
    return [torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(n)]


def test_drop_path_0_is_the_plain_forward_and_loss():
    plain, _ = _dino()
    zero, _ = _dino(drop_path=0.0)
    zero.encoder.set_drop_path(0.0)  # also when set explicitly: no DropPath module at all
    assert not any(isinstance(m, DropPath) for m in zero.modules())
    for m in (plain, zero):
        m.train()
    torch.manual_seed(1)
    a = plain(_views())[0]
    torch.manual_seed(1)
    b = zero(_views())[0]
    assert torch.equal(a, b)


def test_drop_path_makes_the_student_stochastic_and_leaves_the_teacher_as_it_was():
    m, _ = _dino(drop_path=0.5)
    rates = [(b.drop_path1, b.drop_path2) for b in m.encoder.backbone.blocks]
    assert all(isinstance(d, nn.Identity) for d in rates[0])  # DINO's rule: linspace(0, rate, depth)
    assert all(isinstance(d, DropPath) and d.drop_prob == pytest.approx(0.5) for d in rates[1])
    assert not any(isinstance(mod, DropPath) for mod in m.target_encoder.modules())
    x = _views(1)[0]
    m.train()
    with torch.no_grad():
        teacher = [m.target_encoder.forward_global(x) for _ in range(2)]
        student = [m.encoder.forward_global(x) for _ in range(2)]
        m.encoder.eval()
        student_eval = m.encoder.forward_global(x)
    assert torch.equal(teacher[0], teacher[1])  # train mode, yet no drop: the teacher is deterministic
    assert torch.equal(student_eval, teacher[0])  # same weights at the start; eval mode drops nothing
    assert not torch.equal(student[0], student[1]) and not torch.allclose(student[0], student_eval)


def _step(m, cfg):
    """One training step (AdamW with weight decay, EMA at 0.9); the frozen last layer is tested through
    train() in test_vit_training's resume test."""
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.04)
    return training_step(m, m, opt, _views(), lr=1e-2, weight_decay=0.04, momentum=0.9, schedule_values={},
                         device=torch.device("cpu"), precision="fp32")


def test_a_normed_last_layer_keeps_unit_rows_through_a_step():
    m, cfg = _dino()
    heads = (m.head, m.local.head, m.target_head)
    assert all(h.prototypes_g is None for h in heads) and "head.prototypes_g" not in m.state_dict()
    before = m.head.prototypes.detach().clone()
    _step(m.train(), cfg)
    assert not torch.equal(before, m.head.prototypes)  # the directions train
    for h in heads:
        assert torch.allclose(h.last_layer_weight().norm(dim=1), torch.ones(32), atol=1e-6)


def test_an_unnormed_last_layer_trains_g_and_the_teacher_follows_by_ema():
    m, cfg = _dino(norm_last_layer=False)
    assert torch.equal(m.head.prototypes_g, torch.ones(32, 1)) and m.head.prototypes_g.requires_grad
    x = torch.randn(5, 24)
    # g = 1: the same logits as the normed layer (DINO fills weight_g with 1 at the start)
    assert torch.allclose(m.head(x), nn.functional.linear(nn.functional.normalize(m.head.mlp(x), dim=-1),
                                                          nn.functional.normalize(m.head.prototypes, dim=-1)))
    _step(m.train(), cfg)
    g = m.head.prototypes_g.detach()
    assert not torch.allclose(g, torch.ones(32, 1)) and not torch.allclose(m.local.head.prototypes_g, torch.ones(32, 1))
    assert torch.allclose(m.head.last_layer_weight().norm(dim=1, keepdim=True), g.abs(), atol=1e-6)
    assert torch.allclose(m.target_head.prototypes_g, 0.9 + 0.1 * g)  # EMA at momentum 0.9 from g = 1


@pytest.mark.parametrize("change, match", [
    ({"arch": "resnet10", "drop_path": 0.1, "vit_patch_size": 0, "vit_dim": 0, "vit_depth": 0, "vit_heads": 0},
     "--drop-path applies to ViTs"),
    ({"method": "co-byol", "norm_last_layer": False}, "--no-norm-last-layer applies to dino and co-dino"),
    ({"drop_path": 1.0}, "--drop-path"),
])
def test_the_dino_options_are_refused_where_they_do_not_apply(change, match):
    with pytest.raises(UserError, match=match):
        _cfg(change.pop("method", "co-dino"), **change)


def test_the_new_options_leave_the_stored_config_of_other_runs_as_it_was():
    stored = TrainConfig(arch="vit_tiny", dataset="synthetic").to_json()
    assert "drop_path" not in stored and "norm_last_layer" not in stored
    assert TrainConfig(arch="vit_tiny", dataset="synthetic", drop_path=0.1).to_json()["drop_path"] == 0.1
    assert TrainConfig.from_json(stored).norm_last_layer is True and TrainConfig.from_json(stored).drop_path == 0
