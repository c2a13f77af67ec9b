"""`--local-positions M`: the local loss at M grid positions drawn each step, an unbiased estimate of
the all-positions local loss (every CO-loss is a mean over positions of a per-position loss)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json

import pytest
import torch
from torch import nn

from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.methods import METHODS, co
from co_ssl_train.methods.co import LocalBranch, LocalSettings
from co_ssl_train.methods.heads import per_position
from co_ssl_train.models import build_encoder
from co_ssl_train.train import train
from tests.conftest import TINY


def test_the_branch_computes_its_heads_at_the_drawn_positions_only():
    head = nn.Linear(4, 3)
    local = torch.randn(5, 4, 4, 4)
    branch = LocalBranch(head, lambda c: copy.deepcopy(head), 4, 4, LocalSettings(positions=6))
    torch.manual_seed(7)
    out = branch(local)
    torch.manual_seed(7)
    chosen = torch.randperm(16)[:6]
    assert out.shape == (6, 5, 3)
    torch.testing.assert_close(out, per_position(branch.head, local)[chosen])
    assert len(set(chosen.tolist())) == 6  # without replacement
    every = LocalBranch(head, lambda c: copy.deepcopy(head), 4, 4, LocalSettings(positions=16))
    every.head.load_state_dict(branch.head.state_dict())
    torch.testing.assert_close(every(local), per_position(every.head, local))  # M = n^2: all, in order


def _co_method(name: str):
    torch.manual_seed(0)
    cfg = TrainConfig(method=name, dataset="synthetic", arch="resnet10", width=8, proj_hidden=32, proj_dim=16,
                      dino_prototypes=32, batch_size=6, local_grid=2).resolved(32)
    return METHODS[name].build(build_encoder("resnet10", {"width": 8, "stem": "cifar"}), cfg)


@pytest.mark.parametrize("name", ["co-byol", "co-simclr", "co-mocov3", "co-dino", "co-vicreg"])
def test_the_mean_over_every_draw_is_the_all_positions_loss(name, monkeypatch):
    """2 of a 2x2 grid's 4 positions: over the 6 possible draws, the sampled local losses average to the
    local loss at every position (heads in eval mode, so BatchNorm does not depend on the draw); single
    draws differ from it."""
    method = _co_method(name).eval()
    torch.manual_seed(1)
    views = [torch.rand(6, 3, 32, 32), torch.rand(6, 3, 32, 32)]

    def local_loss(positions: int, draw=None) -> float:
        m = copy.deepcopy(method)  # DINO's forward moves its center
        m.local.settings = dataclasses.replace(m.local.settings, positions=positions)
        if draw is not None:
            monkeypatch.setattr(co, "draw_positions", lambda count, k, device: torch.tensor(draw))
        with torch.no_grad():
            return float(m(views)[1]["loss_local"])

    full = local_loss(0)
    drawn = [local_loss(2, list(d)) for d in itertools.combinations(range(4), 2)]
    assert sum(drawn) / len(drawn) == pytest.approx(full, rel=1e-5)
    assert max(abs(d - full) for d in drawn) > 1e-4 * abs(full)


def test_a_run_records_the_positions_and_refuses_more_than_the_grid(tmp_path):
    base = {**TINY, "method": "co-byol", "out": str(tmp_path), "local_grid": 2, "max_steps": 2}
    run = train(TrainConfig(**base, local_positions=3, run_name="sampled"))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["local_branch"]["positions"] == 3 and meta["config"]["local_positions"] == 3
    plain = json.loads((train(TrainConfig(**base, run_name="plain")) / "meta.json").read_text())
    assert "positions" not in plain["local_branch"] and "local_positions" not in plain["config"]
    with pytest.raises(UserError, match="--local-positions 5 is more than the 2x2 local grid's 4 positions"):
        train(TrainConfig(**base, local_positions=5, run_name="too-many"))
