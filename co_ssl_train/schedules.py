"""Per-step schedules, precomputed as arrays indexed by the global step (as DINO does).

Precomputing keeps the training loop free of schedule logic and makes resume exact: the step
counter is the only state.
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(base: float, final: float, total_steps: int, warmup_steps: int = 0,
                  warmup_start: float = 0.0) -> torch.Tensor:
    """`(total_steps,)` float64: linear warmup from `warmup_start` to `base`, then cosine to `final`."""
    warmup_steps = min(warmup_steps, total_steps)
    warm = torch.linspace(warmup_start, base, warmup_steps + 1, dtype=torch.float64)[1:]
    k = torch.arange(total_steps - warmup_steps, dtype=torch.float64)
    span = max(total_steps - warmup_steps, 1)
    cos = final + 0.5 * (base - final) * (1 + torch.cos(math.pi * k / span))
    return torch.cat([warm, cos])


def cosine(start: float, end: float, total_steps: int) -> torch.Tensor:
    """`(total_steps,)` float64: a half cosine from `start` (step 0) towards `end` (DINO's weight-decay
    schedule); constant when start == end."""
    k = torch.arange(total_steps, dtype=torch.float64)
    return end + 0.5 * (start - end) * (1 + torch.cos(math.pi * k / max(total_steps, 1)))


def ema_momentum(base: float, total_steps: int, end: float = 1.0) -> torch.Tensor:
    """BYOL's target momentum: `end - (end - base) (cos(pi k / K) + 1) / 2`, rising from base towards end."""
    return cosine(base, end, total_steps)
