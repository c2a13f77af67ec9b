"""SimCLR and CO-SimCLR.

SimCLR (Chen et al. 2020): encoder + projector, NT-Xent over the 2N views of the (global, all
ranks) batch: for each view, its other view is the positive and the 2N - 2 views of the other
images are negatives, cosine similarities divided by the temperature.

CO-SimCLR (ours where the paper is silent): each local projection of view a is a query against the
*global* projections of view b of every image in the global batch (the same image's is the
positive: InfoNCE with N - 1 negatives), averaged over positions and the two directions. SimCLR
has no target network, so gradients flow into both sides, as in SimCLR's own loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.distributed import gather, gather_with_grad, rank
from co_ssl_train.methods.co import LocalSettings, attach_local_branch, combine
from co_ssl_train.methods.heads import MLP
from co_ssl_train.methods.views import ViewPlan, encode_views, global_outputs, two_views
from co_ssl_train.models import Encoder


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent. z_a, z_b `(B, D)`: this rank's projections of the two views.

    Mean over this rank's 2B anchors of `-log softmax` of the positive among the 2N - 1 other views
    of the global batch (every rank's embeddings, gathered with gradients).
    """
    a, b = F.normalize(z_a.float(), dim=-1), F.normalize(z_b.float(), dim=-1)
    keys = torch.cat([gather_with_grad(a), gather_with_grad(b)])  # (2N, D)
    n, batch = keys.shape[0] // 2, a.shape[0]
    logits = torch.cat([a, b]) @ keys.T / temperature  # (2B, 2N)
    own = torch.arange(batch, device=a.device) + rank() * batch
    self_idx = torch.cat([own, own + n])
    positive = torch.cat([own + n, own])
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[torch.arange(2 * batch, device=a.device), self_idx] = True
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), positive)


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float, key_grad: bool = True) -> torch.Tensor:
    """InfoNCE of queries against the keys of the global batch.

    q `(..., B, D)` (e.g. positions first), k `(B, D)`: this rank's keys, k[i] the positive of
    q[..., i, :]; every other image's key (all ranks) is a negative. Mean over queries of
    `-log softmax(cos(q, k_all) / temperature)[positive]`. `key_grad=False` stops the gradient
    into the keys (momentum encoders).
    """
    q = F.normalize(q.float(), dim=-1)
    k = F.normalize(k.float(), dim=-1)
    keys = gather_with_grad(k) if key_grad else gather(k.detach())  # (N, D)
    logits = q @ keys.T / temperature  # (..., B, N)
    batch = k.shape[0]
    labels = (torch.arange(batch, device=q.device) + rank() * batch).expand(q.shape[:-1])
    return F.cross_entropy(logits.reshape(-1, keys.shape[0]), labels.reshape(-1))


def views(cfg) -> ViewPlan:
    return two_views(cfg, symmetric=True)


class SimCLR(nn.Module):
    """SimCLR; CO-SimCLR with `local` settings. `forward(views) -> (loss, logs)`."""

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, temperature: float,
                 local: LocalSettings | None = None):
        super().__init__()
        c = encoder.num_features

        def make_head(in_dim: int) -> MLP:
            return MLP(in_dim, proj_hidden, proj_dim)

        self.encoder = encoder
        self.head = make_head(c)
        self.temperature = temperature
        self.settings = local
        self.layers, self.local = attach_local_branch(encoder, self.head, make_head, local)

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.head, self.local) if m is not None]

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        after_pool = self.settings is None or self.settings.mlp_after_pool
        maps = encode_views(self.encoder, views[:2], self.layers)
        z = global_outputs(self.head, maps[0], after_pool, self.encoder.pool)
        q = self.local(torch.cat(maps[-1])).chunk(2, dim=1) if self.local is not None else None
        with torch.autocast(views[0].device.type, enabled=False):
            global_loss = nt_xent(z[0], z[1], self.temperature)
            logs = {"loss_global": global_loss.detach()}
            if q is None or self.settings is None:
                return global_loss, logs
            local_loss = 0.5 * (info_nce(q[0], z[1], self.temperature) + info_nce(q[1], z[0], self.temperature))
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.settings.weight, self.settings.form), logs
