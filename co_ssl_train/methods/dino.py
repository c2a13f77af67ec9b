"""DINO and CO-DINO.

DINO (Caron et al. 2021): a student (encoder + DINO head: MLP, l2-normalized bottleneck,
weight-normalized prototypes) matches the output distribution of a momentum teacher. Teacher
probabilities `softmax((t - c) / tau_t)` with a center `c` (EMA of the teacher's batch mean,
momentum 0.9) and a temperature that warms up linearly (0.04 -> 0.07 over 30 epochs in the paper),
precomputed per step; student log-probabilities `log_softmax(s / tau_s)`, tau_s = 0.1. Loss: the
cross-entropy averaged over every (teacher global view, student view other than it) pair; the
teacher sees the two global views, the student also the `--local-crops` small crops.

CO-DINO: the local head's logits at every position of view a match the teacher's probabilities for
view b (same centering and temperatures), averaged over positions and the two directions; with
multi-crop, the local branch uses the two global views.

Ours, where we differ from DINO's code: by default the head's MLP has BatchNorm between its layers
(as the other heads here, for CNN backbones); `--no-head-bn` gives DINO's ViT head (Linear + GELU,
`use_bn_in_head=False`); `--no-norm-last-layer` trains the prototype rows' norms g (DINO's
`norm_last_layer=False`; the teacher's g is the EMA of the student's, as in DINO, whose teacher
loads the student's state). Freezing the last layer (`--freeze-last-layer`, DINO: 1 epoch) and
per-tensor gradient clipping (`--clip-grad`, DINO: 3.0) are training-loop options (train.py), off by
default and on in the ViT recipes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.distributed import all_reduce_mean
from co_ssl_train.ema import ema_update
from co_ssl_train.methods.co import LocalSettings, attach_local_branch, combine
from co_ssl_train.methods.heads import DINOHead
from co_ssl_train.methods.views import ViewPlan, cross_view_mean, encode_views, global_outputs, local_crops, two_views
from co_ssl_train.models import Encoder


def dino_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Mean cross-entropy `-sum_k P_t[k] log softmax(s / tau_s)[k]`.

    student_logits `(..., B, K)` (e.g. positions first), teacher_probs `(B, K)` (already centered
    and sharpened; no gradient flows into them).
    """
    log_p = F.log_softmax(student_logits.float() / student_temp, dim=-1)
    return -(teacher_probs.detach().float() * log_p).sum(dim=-1).mean()


def teacher_probabilities(teacher_logits: torch.Tensor, center: torch.Tensor, teacher_temp: torch.Tensor) -> torch.Tensor:
    """`softmax((t - c) / tau_t)` over prototypes. teacher_logits `(B, K)`, center `(1, K)`."""
    return F.softmax((teacher_logits.float() - center) / teacher_temp, dim=-1)


def teacher_temperature_schedule(start: float, end: float, warmup_steps: int, total_steps: int) -> torch.Tensor:
    """`(total_steps,)` float64: linear from `start` to `end` over `warmup_steps`, then `end`."""
    warm = torch.linspace(start, end, max(warmup_steps, 1), dtype=torch.float64)[:warmup_steps]
    return torch.cat([warm, torch.full((max(total_steps - warmup_steps, 0),), end, dtype=torch.float64)])[:total_steps]


def views(cfg) -> ViewPlan:
    return two_views(cfg) + local_crops(cfg)


def schedules(cfg, total_steps: int, steps_per_epoch: int) -> dict[str, torch.Tensor]:
    warmup = min(total_steps, round(cfg.dino_warmup_teacher_epochs * steps_per_epoch))
    return {"teacher_temp": teacher_temperature_schedule(cfg.dino_warmup_teacher_temp, cfg.dino_teacher_temp,
                                                         warmup, total_steps)}


class DINO(nn.Module):
    """DINO; CO-DINO with `local` settings. `forward(views) -> (loss, logs)`.

    `set_schedule_values(teacher_temp=...)` sets this step's teacher temperature (a buffer, so a
    compiled forward does not recompile).
    """

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, prototypes: int,
                 student_temp: float = 0.1, center_momentum: float = 0.9, teacher_temp: float = 0.07,
                 local: LocalSettings | None = None, head_bn: bool = True, norm_last_layer: bool = True):
        super().__init__()
        c = encoder.num_features

        def make_head(in_dim: int) -> DINOHead:
            return DINOHead(in_dim, proj_hidden, proj_dim, prototypes, bn=head_bn, norm_last_layer=norm_last_layer)

        self.encoder = encoder
        self.head = make_head(c)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_head = copy.deepcopy(self.head)
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, prototypes))
        self.register_buffer("teacher_temp", torch.tensor(teacher_temp, dtype=torch.float32), persistent=False)
        self.settings = local
        self.layers, self.local = attach_local_branch(encoder, self.head, make_head, local)
        for module in self.target_modules():
            module.requires_grad_(False)

    def online_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.head, self.local) if m is not None]

    def target_modules(self) -> list[nn.Module]:
        return [self.target_encoder, self.target_head]

    def set_schedule_values(self, teacher_temp: float) -> None:
        self.teacher_temp.fill_(teacher_temp)

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update(self.target_encoder, self.encoder, momentum)
        ema_update(self.target_head, self.head, momentum)

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        after_pool = self.settings is None or self.settings.mlp_after_pool
        maps = encode_views(self.encoder, views, self.layers)
        student = global_outputs(self.head, maps[0], after_pool, self.encoder.pool)
        with torch.no_grad():
            teacher = global_outputs(self.target_head, encode_views(self.target_encoder, views[:2], self.layers[:1])[0],
                                     after_pool, self.target_encoder.pool)
            probs = [teacher_probabilities(t, self.center, self.teacher_temp) for t in teacher]
            batch_center = all_reduce_mean(torch.cat(teacher).float().mean(dim=0, keepdim=True))
            self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
        ql = self.local(torch.cat(maps[-1][:2])).chunk(2, dim=1) if self.local is not None else None
        with torch.autocast(views[0].device.type, enabled=False):
            global_loss = cross_view_mean(lambda s, p: dino_loss(s, p, self.student_temp), student, probs)
            logs = {"loss_global": global_loss.detach()}
            if ql is None or self.settings is None:
                return global_loss, logs
            local_loss = 0.5 * (dino_loss(ql[0], probs[1], self.student_temp) + dino_loss(ql[1], probs[0], self.student_temp))
        logs["loss_local"] = local_loss.detach()
        return combine(global_loss, local_loss, self.settings.weight, self.settings.form), logs
