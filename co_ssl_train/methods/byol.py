"""BYOL and CO-BYOL (PROTOCOLS.md section 1).

BYOL: an online encoder + projector + predictor regresses the projection of a momentum (EMA)
target encoder + projector on the other view. Loss per direction `2 - 2 cos(p_a, z_b)`,
averaged over the two directions.

CO-BYOL adds a local branch: the online local map (before pooling), adaptively pooled to
`n x n`, goes through a local projector and local predictor (1x1-conv MLPs); each local prediction
of view a regresses the target *global* projection of view b, averaged over the n^2 positions and
the two directions. Total `L_global + w_s L_local` (additive) or `(1 - w_s) L_global + w_s L_local`
(convex). The target keeps a momentum copy of the local projector, as the paper describes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.ema import ema_update
from co_ssl_train.methods.heads import MLP, ConvMLP
from co_ssl_train.models import Encoder


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean of `2 - 2 cos(p_i, z_i)` over the batch. p, z: `(B, D)`; no gradient flows into z."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def byol_local_loss(p_local: torch.Tensor, z_global: torch.Tensor) -> torch.Tensor:
    """Mean over batch and positions of `2 - 2 cos(p_local[b, :, i, j], z_global[b])`.

    p_local `(B, D, n, n)`: local predictions of one view; z_global `(B, D)`: target global
    projection of the other view (no gradient flows into it).
    """
    z = z_global.detach()[:, :, None, None].expand_as(p_local)
    return (2 - 2 * F.cosine_similarity(p_local, z, dim=1)).mean()


def combine(global_loss: torch.Tensor, local_loss: torch.Tensor, weight: float, form: str) -> torch.Tensor:
    """`L_g + w L_l` (additive) or `(1 - w) L_g + w L_l` (convex)."""
    if form == "convex":
        return (1 - weight) * global_loss + weight * local_loss
    return global_loss + weight * local_loss


class BYOL(nn.Module):
    """BYOL, or CO-BYOL when `local_weight > 0`.

    `forward(views)` takes two float views `(B, 3, S, S)` and returns `(loss, logs)`;
    `momentum_update(m)` moves the target towards the online network.
    """

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, local_weight: float = 0.0,
                 weight_form: str = "additive", local_grid: int = 0):
        super().__init__()
        c = encoder.num_features
        self.encoder = encoder
        self.projector = MLP(c, proj_hidden, proj_dim)
        self.predictor = MLP(proj_dim, proj_hidden, proj_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        self.local_weight = local_weight
        self.weight_form = weight_form
        self.local_grid = local_grid
        self.co = local_weight > 0
        if self.co:
            self.local_projector = ConvMLP(c, proj_hidden, proj_dim)
            self.local_predictor = ConvMLP(proj_dim, proj_hidden, proj_dim)
            self.target_local_projector = copy.deepcopy(self.local_projector)
        for module in self.target_modules():
            module.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        extra = [self.local_projector, self.local_predictor] if self.co else []
        return [self.encoder, self.projector, self.predictor, *extra]

    def target_modules(self) -> list[nn.Module]:
        extra = [self.target_local_projector] if self.co else []
        return [self.target_encoder, self.target_projector, *extra]

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update(self.target_encoder, self.encoder, momentum)
        ema_update(self.target_projector, self.projector, momentum)
        if self.co:
            ema_update(self.target_local_projector, self.local_projector, momentum)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        a, b = views
        batch = a.shape[0]
        # online: both views in one pass
        local = self.encoder.forward_local(torch.cat([a, b]))  # (2B, C, h, w)
        p = self.predictor(self.projector(local.mean(dim=(2, 3))))
        with torch.no_grad():
            z = self.target_projector(self.target_encoder.forward_global(torch.cat([a, b])))
        p_a, p_b = p[:batch], p[batch:]
        z_a, z_b = z[:batch], z[batch:]
        global_loss = 0.5 * (byol_loss(p_a, z_b) + byol_loss(p_b, z_a))
        logs = {"loss_global": global_loss.detach()}
        if not self.co:
            return global_loss, logs
        if self.local_grid:
            local = F.adaptive_avg_pool2d(local, self.local_grid)
        pl = self.local_predictor(self.local_projector(local))  # (2B, D, n, n)
        local_loss = 0.5 * (byol_local_loss(pl[:batch], z_b) + byol_local_loss(pl[batch:], z_a))
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.local_weight, self.weight_form), logs
