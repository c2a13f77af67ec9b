"""VICReg and CO-VICReg.

VICReg (Bardes, Ponce, LeCun 2022): encoder + expander (3-layer MLP). Loss on the embeddings of
the two views, over the global batch (all ranks, gathered with gradients):
`lambda * MSE(z_a, z_b) + mu * [v(z_a) + v(z_b)] + nu * [c(z_a) + c(z_b)]` with
`v(z) = mean_d ReLU(1 - sqrt(Var(z_d) + 1e-4))` and `c(z) = sum of squared off-diagonal covariances / D`;
lambda = mu = 25, nu = 1.

CO-VICReg: the same loss between the local embeddings of view a at each position (variance and
covariance of those local vectors over the batch, position by position) and the global embedding
of view b, averaged over positions and the two directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.distributed import gather_with_grad
from co_ssl_train.methods.co import LocalSettings, attach_local_branch, combine
from co_ssl_train.methods.heads import MLP
from co_ssl_train.methods.views import ViewPlan, encode_views, global_outputs, two_views
from co_ssl_train.models import Encoder


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """`mean over dims of ReLU(1 - sqrt(Var + eps))`, variance over the batch axis. z `(..., N, D)`."""
    std = torch.sqrt(z.var(dim=-2) + eps)
    return F.relu(1 - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """`sum_{i != j} Cov(z)_ij^2 / D` (mean over leading axes). z `(..., N, D)`.

    Computed through the N x N Gram matrix when N < D (`||C||_F = ||z z^T||_F / (N - 1)` for centered
    z), which is exact and much cheaper than the D x D covariance for wide expanders.
    """
    n, d = z.shape[-2], z.shape[-1]
    z = z - z.mean(dim=-2, keepdim=True)
    diag = (z * z).sum(dim=-2) / (n - 1)  # (..., D) variances
    if n < d:
        gram = z @ z.transpose(-1, -2)
        total = (gram * gram).sum(dim=(-2, -1)) / (n - 1) ** 2
    else:
        cov = z.transpose(-1, -2) @ z / (n - 1)
        total = (cov * cov).sum(dim=(-2, -1))
    return ((total - (diag * diag).sum(dim=-1)) / d).mean()


def vicreg_loss(z_a: torch.Tensor, z_b: torch.Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0) -> torch.Tensor:
    """VICReg between z_a `(..., N, D)` (e.g. positions first) and z_b `(N, D)`; N is the batch
    axis (gather across ranks before calling)."""
    z_a, z_b = z_a.float(), z_b.float()
    invariance = F.mse_loss(z_a, z_b.expand_as(z_a))
    variance = variance_term(z_a) + variance_term(z_b)
    covariance = covariance_term(z_a) + covariance_term(z_b)
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of z `(..., B, D)` along the batch axis, with gradients -> `(..., N, D)`."""
    if z.ndim == 2:
        return gather_with_grad(z)
    return gather_with_grad(z.transpose(0, -2).contiguous()).transpose(0, -2)


def views(cfg) -> ViewPlan:
    return two_views(cfg)


class VICReg(nn.Module):
    """VICReg; CO-VICReg with `local` settings. `forward(views) -> (loss, logs)`."""

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, weights: tuple[float, float, float],
                 local: LocalSettings | None = None):
        super().__init__()
        c = encoder.num_features

        def make_head(in_dim: int) -> MLP:
            return MLP(in_dim, proj_hidden, proj_dim, layers=3)

        self.encoder = encoder
        self.head = make_head(c)
        self.weights = weights
        self.settings = local
        self.layers, self.local = attach_local_branch(encoder, self.head, make_head, local)

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.head, self.local) if m is not None]

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        after_pool = self.settings is None or self.settings.mlp_after_pool
        maps = encode_views(self.encoder, views[:2], self.layers)
        z = [gather_batch(v) for v in global_outputs(self.head, maps[0], after_pool, self.encoder.pool)]
        ql = self.local(torch.cat(maps[-1])).chunk(2, dim=1) if self.local is not None else None
        with torch.autocast(views[0].device.type, enabled=False):
            global_loss = vicreg_loss(z[0], z[1], *self.weights)
            logs = {"loss_global": global_loss.detach()}
            if ql is None or self.settings is None:
                return global_loss, logs
            local_loss = 0.5 * (vicreg_loss(gather_batch(ql[0]), z[1], *self.weights)
                                + vicreg_loss(gather_batch(ql[1]), z[0], *self.weights))
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.settings.weight, self.settings.form), logs
