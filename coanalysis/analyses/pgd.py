"""Adversarial robustness: PGD through foolbox (PROTOCOLS.md section 6).

The attacked model is `probe ∘ encoder` (`ProbedEncoder`) in eval mode, images in [0, 1] with
bounds (0, 1); under bf16 precision the encoder runs in bf16 autocast and the probe in float32,
as for every other accuracy. One cell per (norm, epsilon), e.g. `linf eps=1/255` or
`l2 eps=0.25`: foolbox's `LinfPGD` / `L2PGD` with `steps`, `rel_stepsize` (or `abs_stepsize`) and
`random_start`, called once per batch with the cell's epsilon list; `restarts` > 1 repeats the
attack (foolbox's `repeat`) and counts an image as broken when any restart succeeds. Robust
accuracy counts the images that are classified correctly both clean and after the attack. Every
cell records the largest perturbation it produced (L-inf or L2 norm of `x_adv - x`), which never
exceeds epsilon; epsilon = 0 leaves every image unchanged and equals the clean accuracy.

foolbox draws the random start from torch's global generator; it is seeded per (seed, cell,
first image position of the batch) inside `torch.random.fork_rng`, so results are reproducible
for a given batch size (recorded), also when a cell's batches are split over torchrun ranks, and
the caller's random state is untouched. This module is the
only caller of foolbox.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from coanalysis.analyses.context import EvalContext
from coanalysis.features.extraction import to_input
from coanalysis.probes.linear import ProbedEncoder
from coanalysis.data.seeding import image_seed
from coanalysis.results.stats import correctness_record
from coanalysis.models.trainer import autocast

LINF_EPS: tuple[float, ...] = (0.0, 0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255)
L2_EPS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)
NORMS = ("linf", "l2")


@dataclass(frozen=True)
class PGDProtocol:
    linf_eps: tuple[float, ...] = LINF_EPS
    l2_eps: tuple[float, ...] = L2_EPS
    steps: int = 20
    rel_stepsize: float = 0.1
    abs_stepsize: float | None = None  # when set, overrides rel_stepsize (foolbox's rule)
    random_start: bool = True
    restarts: int = 1
    n: int | None = None  # attacked images: a seeded subset of the evaluation subset (None: all)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "linf_eps": list(self.linf_eps), "l2_eps": list(self.l2_eps),
                "model": "probe ∘ encoder, eval mode, bounds (0, 1)", "library": "foolbox LinfPGD / L2PGD",
                "robust": "correct on the clean image and on the attacked one",
                "random_start_seed": "torch global RNG seeded per (seed, cell, first position of the batch)",
                "subset": "first n of the evaluation subset's seeded permutation"}


def eps_label(norm: str, eps: float) -> str:
    """`1/255`-style text for L-inf epsilons, plain numbers for L2."""
    if norm == "linf":
        return f"{eps * 255:.6g}/255" if eps else "0"
    return f"{eps:g}"


def parse_eps(text: str) -> float:
    """'0.5', '1/255' or '0.25/255' -> float."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def cells(protocol: PGDProtocol) -> list[str]:
    return ([f"linf eps={eps_label('linf', e)}" for e in protocol.linf_eps]
            + [f"l2 eps={eps_label('l2', e)}" for e in protocol.l2_eps])


def _norm_eps(protocol: PGDProtocol, key: str) -> tuple[str, float]:
    for norm, values in (("linf", protocol.linf_eps), ("l2", protocol.l2_eps)):
        for eps in values:
            if key == f"{norm} eps={eps_label(norm, eps)}":
                return norm, eps
    raise KeyError(key)


class AttackedModel(nn.Module):
    """`ProbedEncoder` with the context's precision: the encoder under autocast, the probe in float32."""

    def __init__(self, probed: ProbedEncoder, precision: str):
        super().__init__()
        self.probed = probed
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.precision):
            features = self.probed.encoder.forward_global(x)
        return self.probed.probe(features.float())


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    """`(B,)` L-inf or L2 norms of `x_adv - x` per image, in float64."""
    delta = (x_adv.double() - x.double()).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The module's parameters need no gradient inside the block: foolbox calls `loss.backward()`,
    which would otherwise compute every weight gradient too, about a third more work per step."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


CONVERGENCE_POINTS = 1.0  # PROTOCOLS 12: flag the largest epsilon when 2x the steps moves it by more


# attack(x, y, correct, logits, seed) -> (x_adv, robust `(B,)` bool) for one batch
BatchAttack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int],
                       tuple[torch.Tensor, torch.Tensor]]


def attack_subset(ctx: EvalContext, n: int | None, seed: int, key: str, norm: str, model: nn.Module,
                  attack: BatchAttack) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run `attack` batch by batch on the seeded subset of `n` images with `model`'s parameters
    frozen; each batch's RNG is forked and seeded from (seed, cell, first image position), so a
    cell's result does not depend on what ran before it, nor on a split of its batches over torchrun
    ranks (`ctx.split`: this rank attacks its run of whole batches, the results are joined).
    Returns (robust `(n,)` bool, clean-correct `(n,)` bool, largest perturbation norm). Shared by
    PGD and AutoAttack."""
    subset = ctx.images(n)
    condition = zlib.crc32(key.encode())
    devices = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
    robust, clean = [torch.zeros(0, dtype=torch.bool)], [torch.zeros(0, dtype=torch.bool)]
    largest = 0.0
    first, end = ctx.split.rows(len(subset), ctx.batch_size)
    with frozen(model):
        for start in range(first, end, ctx.batch_size):
            rows = slice(start, start + ctx.batch_size)
            x = to_input(subset.images[rows], ctx.device)
            y = subset.labels[rows].to(ctx.device)
            with torch.no_grad():
                logits = model(x)
            correct = logits.argmax(1) == y
            batch_seed = image_seed(seed, condition, int(subset.positions[start]))
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(batch_seed)
                x_adv, still = attack(x, y, correct, logits, batch_seed)
            largest = max(largest, float(perturbation_norms(x, x_adv, norm).max()))
            clean.append(correct.cpu())
            robust.append((correct & still).cpu())
    split = ctx.split
    return split.join(torch.cat(robust)), split.join(torch.cat(clean)), split.largest(largest)


def attack_cell(ctx: EvalContext, n: int | None, norm: str, eps: float, robust: torch.Tensor, clean: torch.Tensor,
                largest: float) -> dict[str, Any]:
    """The stored cell of an attack on the seeded subset of `n` images (`attack_subset`'s results):
    robust and clean accuracy, the largest perturbation, and the per-image correctness record.
    Shared by PGD and AutoAttack."""
    ids = ctx.data.indices[ctx.images(n).positions]
    k = len(robust)
    return {"norm": norm, "eps": eps, "eps_label": eps_label(norm, eps), "accuracy": int(robust.sum()) / max(k, 1),
            "clean_accuracy": int(clean.sum()) / max(k, 1), "n": k, "max_perturbation": largest,
            "batch_size": ctx.batch_size, **correctness_record(robust.numpy(), ids.numpy())}


def _attack(ctx: EvalContext, protocol: PGDProtocol, key: str,
            steps: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(robust `(n,)` bool, clean-correct `(n,)` bool, largest perturbation) of one cell's attack
    with `steps` steps, on the seeded subset of `protocol.n` images."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # foolbox imports GitPython
    import foolbox as fb

    norm, eps = _norm_eps(protocol, key)
    model = AttackedModel(ProbedEncoder(ctx.encoder, ctx.probe), ctx.precision).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=ctx.device)
    attack_type = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
    attack = attack_type(steps=steps, rel_stepsize=protocol.rel_stepsize,
                         abs_stepsize=protocol.abs_stepsize, random_start=protocol.random_start)
    if protocol.restarts > 1:
        attack = attack.repeat(protocol.restarts)

    def pgd(x, y, correct, logits, batch_seed):
        _, clipped, success = attack(fmodel, x, y, epsilons=[eps])
        return clipped[0], ~success[0]

    return attack_subset(ctx, protocol.n, protocol.seed, key, norm, model, pgd)


def run_cell(ctx: EvalContext, protocol: PGDProtocol, key: str) -> dict[str, Any]:
    """One (norm, epsilon) cell; the largest epsilon of each norm also runs at 2x the steps
    (PROTOCOLS 12 convergence check) and is flagged when the two differ by more than 1 point."""
    norm, eps = _norm_eps(protocol, key)
    cell = attack_cell(ctx, protocol.n, norm, eps, *_attack(ctx, protocol, key, protocol.steps))
    n, accuracy = cell["n"], cell["accuracy"]
    values = protocol.linf_eps if norm == "linf" else protocol.l2_eps
    if eps > 0 and eps == max(values):
        longer, _, _ = _attack(ctx, protocol, key, 2 * protocol.steps)
        acc2 = int(longer.sum()) / max(n, 1)
        cell["convergence"] = {"steps": 2 * protocol.steps, "accuracy": acc2,
                               "difference_points": 100 * (accuracy - acc2),
                               "flagged": abs(accuracy - acc2) * 100 > CONVERGENCE_POINTS,
                               "rule": f"flagged when |acc({protocol.steps} steps) - acc({2 * protocol.steps} steps)| "
                                       f"> {CONVERGENCE_POINTS:g} point"}
    return cell
