"""SSL methods by name: the `METHODS` table.

Each method lives in one file with its loss as a pure function of tensors. A method module takes
a list of augmented views and returns `(loss, logs)`; methods with a momentum target also have
`momentum_update(m)`. Its `encoder` attribute is the network that gets exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from co_ssl_train.errors import UserError
from co_ssl_train.methods import byol
from co_ssl_train.models import Encoder


@dataclass(frozen=True)
class MethodSpec:
    """One entry of `METHODS`."""

    build: Callable[[Encoder, "object"], nn.Module]  # (encoder, TrainConfig) -> method module
    description: str
    momentum: bool  # has an EMA target updated every step
    co: bool  # trains the local branch (a CO-SSL variant)


def _byol(co: bool) -> Callable[[Encoder, object], nn.Module]:
    def build(encoder: Encoder, cfg) -> nn.Module:
        return byol.BYOL(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
                         local_weight=cfg.local_weight if co else 0.0, weight_form=cfg.weight_form,
                         local_grid=cfg.local_grid)
    return build


METHODS: dict[str, MethodSpec] = {
    "byol": MethodSpec(_byol(False), "BYOL (Grill et al. 2020)", momentum=True, co=False),
    "co-byol": MethodSpec(_byol(True), "BYOL + local-to-global alignment (CO-SSL)", momentum=True, co=True),
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]
