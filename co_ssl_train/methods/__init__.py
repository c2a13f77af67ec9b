"""SSL methods by name: the `METHODS` table.

Each method lives in one file with its loss as a pure function of tensors. A method module takes
the list of augmented views its `views(cfg)` plan asks for and returns `(loss, logs)`; it lists its
trained modules in `online_modules()`; methods with a momentum target also have
`momentum_update(m)`. Its `encoder` attribute is the network that gets exported. Every CO-variant
is its base method plus the shared local branch of `co.py`, trained with the base method's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from co_ssl_train.errors import UserError
from co_ssl_train.methods import bagssl, byol, dino, mocov3, simclr, vicreg
from co_ssl_train.methods.co import local_settings
from co_ssl_train.methods.views import ViewPlan
from co_ssl_train.models import Encoder


@dataclass(frozen=True)
class MethodSpec:
    """One entry of `METHODS`."""

    build: Callable[[Encoder, "object"], nn.Module]  # (encoder, TrainConfig) -> method module
    views: Callable[["object"], ViewPlan]  # TrainConfig -> [(ViewAugment, count), ...]
    description: str
    momentum: bool  # has an EMA target updated every step
    co: bool  # trains the local branch (a CO-SSL variant)
    local_crops: int | None = None  # default number of multi-crop crops; None: no multi-crop
    schedules: Callable[["object", int, int], dict[str, torch.Tensor]] | None = None  # (cfg, steps, steps/epoch)
    representation: Callable[["object"], dict] | None = None  # meta.json's note on how to read the encoder


def _byol(co: bool):
    def build(encoder: Encoder, cfg) -> nn.Module:
        return byol.BYOL(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim, local=local_settings(cfg, co))
    return build


def _simclr(co: bool):
    def build(encoder: Encoder, cfg) -> nn.Module:
        return simclr.SimCLR(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim, temperature=cfg.temperature,
                             local=local_settings(cfg, co))
    return build


def _mocov3(co: bool):
    def build(encoder: Encoder, cfg) -> nn.Module:
        return mocov3.MoCoV3(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim, temperature=cfg.temperature,
                             local=local_settings(cfg, co))
    return build


def _dino(co: bool):
    def build(encoder: Encoder, cfg) -> nn.Module:
        return dino.DINO(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim, prototypes=cfg.dino_prototypes,
                         student_temp=cfg.dino_student_temp, center_momentum=cfg.dino_center_momentum,
                         teacher_temp=cfg.dino_teacher_temp, local=local_settings(cfg, co), head_bn=cfg.head_bn,
                         norm_last_layer=cfg.norm_last_layer)
    return build


def _vicreg(co: bool):
    def build(encoder: Encoder, cfg) -> nn.Module:
        return vicreg.VICReg(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
                             weights=(cfg.vicreg_sim, cfg.vicreg_var, cfg.vicreg_cov), local=local_settings(cfg, co))
    return build


def _bagssl(encoder: Encoder, cfg) -> nn.Module:
    return bagssl.BagSSL(encoder, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
                         weights=(cfg.vicreg_sim, cfg.vicreg_var, cfg.vicreg_cov))


METHODS: dict[str, MethodSpec] = {
    "byol": MethodSpec(_byol(False), byol.views, "BYOL (Grill et al. 2020)", momentum=True, co=False),
    "byol-mc": MethodSpec(_byol(False), byol.views, "BYOL with multi-crop (2 global + --local-crops small views)",
                          momentum=True, co=False, local_crops=6),
    "simclr": MethodSpec(_simclr(False), simclr.views, "SimCLR (Chen et al. 2020), NT-Xent", momentum=False, co=False),
    "mocov3": MethodSpec(_mocov3(False), mocov3.views, "MoCo v3 (Chen, Xie, He 2021)", momentum=True, co=False),
    "dino": MethodSpec(_dino(False), dino.views, "DINO (Caron et al. 2021); multi-crop with --local-crops",
                       momentum=True, co=False, local_crops=0, schedules=dino.schedules),
    "vicreg": MethodSpec(_vicreg(False), vicreg.views, "VICReg (Bardes, Ponce, LeCun 2022)", momentum=False, co=False),
    "co-byol": MethodSpec(_byol(True), byol.views, "BYOL + local-to-global alignment (CO-SSL)", momentum=True, co=True),
    "co-simclr": MethodSpec(_simclr(True), simclr.views, "SimCLR + local-to-global InfoNCE (CO-SSL)",
                            momentum=False, co=True),
    "co-mocov3": MethodSpec(_mocov3(True), mocov3.views, "MoCo v3 + local-to-global alignment (CO-SSL)",
                            momentum=True, co=True),
    "co-dino": MethodSpec(_dino(True), dino.views, "DINO + local-to-global alignment (CO-SSL)", momentum=True, co=True,
                          local_crops=0, schedules=dino.schedules),
    "co-vicreg": MethodSpec(_vicreg(True), vicreg.views, "VICReg + local-to-global alignment (CO-SSL)",
                            momentum=False, co=True),
    "bagssl": MethodSpec(_bagssl, bagssl.views, "BagSSL (Chen et al. 2023): fixed-scale patch bags, VICReg objective",
                         momentum=False, co=False, representation=bagssl.representation_meta),
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def build_method(spec: MethodSpec, encoder: Encoder, cfg) -> nn.Module:
    """`spec.build(encoder, cfg)`, then `--drop-path` stochastic depth in the trained encoder only: the
    momentum targets were copied from it before, so they have none (DINO's teacher has none)."""
    method = spec.build(encoder, cfg)
    if cfg.drop_path > 0:
        method.encoder.set_drop_path(cfg.drop_path)
    return method
