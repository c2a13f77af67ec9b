"""Adversarial robustness: AutoAttack through the `pyautoattack` package (RobustBench's standard).

The attacked model is `probe ∘ encoder` in eval mode with the context's precision, images in
[0, 1], exactly as for PGD (`coanalysis.analyses.pgd.AttackedModel`). One cell per (norm, epsilon),
keys as PGD's (`linf eps=1/255`, `l2 eps=0.5`). `version`:
- "standard": APGD-CE, APGD-T (9 target classes), FAB-T (9), Square (5 000 queries), each run on the
  images the previous attacks left correct (Croce & Hein 2020);
- "cheap": APGD-CE and APGD-T only (no FAB-T, no Square), a few times faster.
With fewer than 10 classes the targeted attacks use every other class. Robust accuracy counts the
images classified correctly both clean and after the suite; every cell records the largest
perturbation, which never exceeds epsilon. Epsilon = 0 runs no attack and equals the clean accuracy.

pyautoattack seeds torch's global generator; each batch runs inside `torch.random.fork_rng`
seeded per (seed, cell, first image position of the batch). This module is its only caller.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch

from coanalysis.analyses.pgd import AttackedModel, attack_cell, attack_subset, eps_label
from coanalysis.probes.linear import ProbedEncoder

VERSIONS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "cheap": ("apgd-ce", "apgd-t")}
LINF_EPS: tuple[float, ...] = (0.0, 1 / 255, 4 / 255)
L2_EPS: tuple[float, ...] = (0.5,)


@dataclass(frozen=True)
class AutoAttackProtocol:
    linf_eps: tuple[float, ...] = LINF_EPS
    l2_eps: tuple[float, ...] = L2_EPS
    version: str = "standard"
    n: int | None = 1000  # attacked images: a seeded subset of the evaluation subset (None: all)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "linf_eps": list(self.linf_eps), "l2_eps": list(self.l2_eps),
                "attacks": list(VERSIONS[self.version]), "model": "probe ∘ encoder, eval mode, bounds (0, 1)",
                "library": "pyautoattack AutoAttack", "robust": "correct on the clean image and after the suite",
                "seeding": "torch global RNG seeded per (seed, cell, first position of the batch)",
                "subset": "first n of the evaluation subset's seeded permutation"}


def cells(protocol: AutoAttackProtocol) -> list[str]:
    return ([f"linf eps={eps_label('linf', e)}" for e in protocol.linf_eps]
            + [f"l2 eps={eps_label('l2', e)}" for e in protocol.l2_eps])


def _norm_eps(protocol: AutoAttackProtocol, key: str) -> tuple[str, float]:
    for norm, values in (("linf", protocol.linf_eps), ("l2", protocol.l2_eps)):
        for eps in values:
            if key == f"{norm} eps={eps_label(norm, eps)}":
                return norm, eps
    raise KeyError(key)


def _suite(model, norm: str, eps: float, version: str, num_classes: int, device: torch.device, seed: int):
    from pyautoattack import AutoAttack

    attack = AutoAttack(model, attacks=list(VERSIONS[version]), device=device, eps=eps,
                        norm="Linf" if norm == "linf" else "L2", seed=seed, version="custom")
    # the standard suite's settings (pyautoattack's _set_version('standard')), for any class count
    targets = min(9, num_classes - 1)
    attack.apgd.n_restarts = 1
    attack.apgd_targeted.n_restarts = 1
    attack.apgd_targeted.n_target_classes = targets
    attack.fab.n_restarts = 1
    attack.fab.n_target_classes = targets
    attack.square.n_queries = 5000
    attack.verbose = False
    return attack


def run_cell(ctx, protocol: AutoAttackProtocol, key: str) -> dict[str, Any]:
    """One (norm, epsilon) cell, batches as PGD's (`pgd.attack_subset`), with its per-image
    record and bootstrap interval (PROTOCOLS 11)."""
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    norm, eps = _norm_eps(protocol, key)
    model = AttackedModel(ProbedEncoder(ctx.encoder, ctx.probe), ctx.precision).eval()

    def suite(x, y, correct, logits, batch_seed):
        x_adv = x
        if eps > 0 and bool(correct.any()):
            attack = _suite(model, norm, eps, protocol.version, logits.shape[1], ctx.device, batch_seed)
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
        with torch.no_grad():
            return x_adv, model(x_adv).argmax(1) == y

    robust, clean, largest = attack_subset(ctx, protocol.n, protocol.seed, key, norm, model, suite)
    return {**attack_cell(ctx, protocol.n, norm, eps, robust, clean, largest), "version": protocol.version}
