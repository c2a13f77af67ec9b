"""Optimizers: LARS (as BYOL and SimCLR use it, with solo-learn's options), SGD with momentum, AdamW.

Biases and normalization parameters get no weight decay and no LARS adaptation, as in BYOL
(`exclude_bias_norm=False` puts them with the weights). Learning rate and weight decay are set by
the training loop every step from precomputed schedules; `lars_adapt` and the per-group
weight-decay flag say which groups they apply to.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from co_ssl_train.errors import UserError


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose per-tensor update is scaled by a trust ratio (You et al. 2017; BYOL):

        d = g + wd w,   r = eta ||w|| / ||d||   (r = 1 when ||w|| or ||d|| is 0),
        buf = momentum buf + r d,   w = w - lr buf.

    With `clip` (NVIDIA's LARC, solo-learn's `clip_lr`) r becomes `min(r / lr, 1)`, so a weight's
    step `lr r d` is `min(eta ||w|| / ||d||, lr) d`: the adapted rate never exceeds the global one.
    The denominator `||g + wd w||` is BYOL's and SimCLR's; solo-learn divides by `||g|| + wd ||w||`
    instead (the same when g and w are parallel, smaller trust otherwise).

    Groups with `lars_adapt=False` (biases, norms) take plain momentum SGD steps on `g + wd w`, with
    the group's weight decay (0 for them under `param_groups`).
    """

    def __init__(self, params: Iterable, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                 eta: float = 0.02, clip: bool = False):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, clip=clip,
                                      lars_adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["lars_adapt"]:
                    d = d.add(p, alpha=group["weight_decay"])
                    p_norm, d_norm = torch.norm(p), torch.norm(d)
                    ratio = group["eta"] * p_norm / d_norm
                    if group.get("clip", False) and group["lr"] > 0:
                        ratio = torch.clamp(ratio / group["lr"], max=1.0)
                    d = d.mul(torch.where((p_norm > 0) & (d_norm > 0), ratio, torch.ones_like(p_norm)))
                elif group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(d).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(d)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])


def param_groups(modules: list[nn.Module], exclude_bias_norm: bool = True) -> list[dict]:
    """Two groups: weights (decayed, LARS-adapted) and biases/norm parameters (neither); with
    `exclude_bias_norm=False` every parameter is in the first.

    A parameter reached through several modules (a head shared by two branches) is listed once.
    """
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                (decay if p.ndim > 1 or not exclude_bias_norm else no_decay).append(p)
    return [{"params": decay, "lars_adapt": True, "apply_wd": True},
            {"params": no_decay, "lars_adapt": False, "apply_wd": False}]


def build_optimizer(name: str, groups: list[dict], lr: float, weight_decay: float, *, lars_eta: float = 0.02,
                    lars_clip: bool = False) -> torch.optim.Optimizer:
    if name == "lars":
        return LARS(groups, lr=lr, weight_decay=weight_decay, eta=lars_eta, clip=lars_clip)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer {name!r}; choose one of: lars, sgd, adamw")


def set_lr_wd(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Apply this step's schedule values; no-decay groups keep weight decay 0."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["weight_decay"] = weight_decay if group.get("apply_wd", True) else 0.0


def clip_gradients(parameters, max_norm: float) -> None:
    """DINO's clipping (its utils.clip_gradients): each parameter's gradient scaled down to l2 norm
    `max_norm` when larger, tensor by tensor."""
    for p in parameters:
        if p.grad is not None:
            norm = p.grad.detach().norm(2)
            p.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
