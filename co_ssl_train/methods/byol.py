"""BYOL, CO-BYOL and BYOL with multi-crop (PROTOCOLS.md section 1).

BYOL (Grill et al. 2020): an online encoder + projector + predictor regresses the projection of a
momentum (EMA) target encoder + projector on the other view. Loss per pair
`2 - 2 cos(p_a, z_b)`, averaged over the two directions.

Multi-crop (`byol-mc`, the baseline the CO-SSL reviewers asked for): the online network also sees
`--local-crops` small crops; every online view regresses the target projection of each global
view other than itself, averaged over those pairs (DINO's multi-crop pairing; ours for BYOL).

CO-BYOL adds the local branch of `co.py`: local projector + predictor at every position of the
n x n grid, each local prediction of view a regressing a target of view b. The target keeps a
momentum copy of the local projector, as the paper describes. What the local predictions regress
is `--local-target`:
- `global` (default, ours): the target's *global* projection of view b, the same `z_b` the global
  loss uses (the momentum local projector is then kept up to date but unused);
- `local` (the paper's): the momentum local projector applied to the target's pooled map of view b
  (the map of the local layer, averaged over positions): `z_b^loc = g'_loc(mean_hw L'_b)`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.ema import ema_update
from co_ssl_train.methods.co import LocalSettings, attach_local_branch, combine
from co_ssl_train.methods.heads import MLP
from co_ssl_train.methods.views import ViewPlan, cross_view_mean, encode_views, global_outputs, local_crops, two_views
from co_ssl_train.models import Encoder


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of `2 - 2 cos(p, z)`. p `(..., B, D)` (e.g. positions first), z `(B, D)`; no gradient
    flows into z."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def views(cfg) -> ViewPlan:
    return two_views(cfg) + local_crops(cfg)


class BYOL(nn.Module):
    """BYOL; CO-BYOL with `local` settings; multi-crop when given more than two views.

    `forward(views)` takes the global views `(B, 3, S, S)` first, then any small crops, and returns
    `(loss, logs)`; `momentum_update(m)` moves the target towards the online network.
    """

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, local: LocalSettings | None = None):
        super().__init__()
        c = encoder.num_features

        def make_head(in_dim: int) -> nn.Sequential:  # projector, then predictor
            return nn.Sequential(MLP(in_dim, proj_hidden, proj_dim), MLP(proj_dim, proj_hidden, proj_dim))

        self.encoder = encoder
        self.head = make_head(c)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.head[0])
        self.settings = local
        self.layers, self.local = attach_local_branch(encoder, self.head, make_head, local)
        self.target_local_projector: nn.Module | None = None
        if self.local is not None and self.local.head is not None:
            self.target_local_projector = copy.deepcopy(self.local.head[0])
        for module in self.target_modules():
            module.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.head, self.local) if m is not None]

    def target_modules(self) -> list[nn.Module]:
        return [m for m in (self.target_encoder, self.target_projector, self.target_local_projector) if m is not None]

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update(self.target_encoder, self.encoder, momentum)
        ema_update(self.target_projector, self.head[0], momentum)
        if self.target_local_projector is not None:
            ema_update(self.target_local_projector, self.local.head[0], momentum)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        after_pool = self.settings is None or self.settings.mlp_after_pool
        maps = encode_views(self.encoder, views, self.layers)
        p = global_outputs(self.head, maps[0], after_pool, self.encoder.pool)
        local_target = self.local is not None and self.settings.target == "local"
        with torch.no_grad():
            target_maps = encode_views(self.target_encoder, views[:2], self.layers if local_target else self.layers[:1])
            z = global_outputs(self.target_projector, target_maps[0], after_pool, self.target_encoder.pool)
            if local_target:  # the momentum local projector on the pooled local-layer map
                z_local = global_outputs(self.target_local_projector, target_maps[-1])
        global_loss = cross_view_mean(byol_loss, p, z)
        logs = {"loss_global": global_loss.detach()}
        if self.local is None:
            return global_loss, logs
        targets = z_local if local_target else z
        q_a, q_b = self.local(torch.cat(maps[-1][:2])).chunk(2, dim=1)  # (n*n, B, D) each
        local_loss = 0.5 * (byol_loss(q_a, targets[1]) + byol_loss(q_b, targets[0]))
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.settings.weight, self.settings.form), logs
