"""MoCo v3 and CO-MoCoV3.

MoCo v3 (Chen, Xie, He 2021), ResNet variant: online encoder + projector (2-layer MLP ending in a
BatchNorm without affine parameters) + predictor (2-layer MLP); momentum encoder + projector. Loss
`ctr(q_a, k_b) + ctr(q_b, k_a)` with `ctr(q, k) = 2 tau * CrossEntropy(q . k_all / tau)`: every
image's momentum key in the global batch is a candidate, the same image's is the positive.

CO-MoCoV3: each local prediction of view a is a query against the momentum *global* keys of view
b, with the same `ctr`, averaged over positions; summed over the two directions as the global loss.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from co_ssl_train.ema import ema_update
from co_ssl_train.methods.co import LocalSettings, attach_local_branch, combine
from co_ssl_train.methods.heads import MLP
from co_ssl_train.methods.simclr import info_nce
from co_ssl_train.methods.views import ViewPlan, encode_views, global_outputs, two_views
from co_ssl_train.models import Encoder


def mocov3_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v3's `ctr`: `2 tau * InfoNCE(q, k_all)`. q `(..., B, D)`, k `(B, D)` momentum keys of
    the same images (gathered from every rank, no gradient)."""
    return 2 * temperature * info_nce(q, k, temperature, key_grad=False)


def views(cfg) -> ViewPlan:
    return two_views(cfg)


class MoCoV3(nn.Module):
    """MoCo v3; CO-MoCoV3 with `local` settings. `forward(views) -> (loss, logs)`."""

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, temperature: float,
                 local: LocalSettings | None = None):
        super().__init__()
        c = encoder.num_features

        def make_head(in_dim: int) -> nn.Sequential:  # projector, then predictor
            return nn.Sequential(MLP(in_dim, proj_hidden, proj_dim, last_bn=True),
                                 MLP(proj_dim, proj_hidden, proj_dim))

        self.encoder = encoder
        self.head = make_head(c)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.head[0])
        self.temperature = temperature
        self.settings = local
        self.layers, self.local = attach_local_branch(encoder, self.head, make_head, local)
        for module in self.target_modules():
            module.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.head, self.local) if m is not None]

    def target_modules(self) -> list[nn.Module]:
        return [self.target_encoder, self.target_projector]

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update(self.target_encoder, self.encoder, momentum)
        ema_update(self.target_projector, self.head[0], momentum)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        after_pool = self.settings is None or self.settings.mlp_after_pool
        maps = encode_views(self.encoder, views[:2], self.layers)
        q = global_outputs(self.head, maps[0], after_pool, self.encoder.pool)
        with torch.no_grad():
            k = global_outputs(self.target_projector, encode_views(self.target_encoder, views[:2], self.layers[:1])[0],
                               after_pool, self.target_encoder.pool)
        ql = self.local(torch.cat(maps[-1])).chunk(2, dim=1) if self.local is not None else None
        t = self.temperature
        with torch.autocast(views[0].device.type, enabled=False):
            global_loss = mocov3_loss(q[0], k[1], t) + mocov3_loss(q[1], k[0], t)
            logs = {"loss_global": global_loss.detach()}
            if ql is None or self.settings is None:
                return global_loss, logs
            local_loss = mocov3_loss(ql[0], k[1], t) + mocov3_loss(ql[1], k[0], t)
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.settings.weight, self.settings.form), logs
