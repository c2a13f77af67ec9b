"""The linear probe (PROTOCOLS.md section 2): a linear classifier on frozen global features.

Features are standardized with the training features' mean/std, then a multinomial logistic
regression is fitted on `CE + wd/2 ||W||^2`. The weight decay is chosen from a grid on a seeded
held-out part of the training features, and the probe is refitted on all of them with that value.
Every accuracy in co-ssl uses the probe unchanged unless stated.

Solvers (ours): full-batch L-BFGS (exact, the default for up to `LBFGS_LIMIT` training
features x classes), or minibatch SGD with Nesterov momentum and a cosine schedule for larger
sets (ImageNet-1k). The grid is walked from the strongest decay to the weakest, each fit starting
from the previous solution, and the final fit starts from the held-out fit of the chosen decay,
so the probe trains in seconds on cached features.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coanalysis.features.extraction import Features
from coanalysis.models.trainer import Encoder, UserError, write_bytes_atomic, write_json_atomic

PROBE_WEIGHTS = "probe.safetensors"
PROBE_JSON = "probe.json"
LBFGS_LIMIT = 50_000_000  # training images x classes above which "auto" uses minibatch SGD
SOLVERS = ("auto", "lbfgs", "sgd")


@dataclass(frozen=True)
class ProbeProtocol:
    """How the probe is fitted; recorded with every accuracy."""

    weight_decays: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
    holdout_fraction: float = 0.1
    max_iter: int = 300
    seed: int = 0
    n_train: int | None = None  # training-split images used (None: all)
    solver: str = "auto"  # "lbfgs", "sgd", or "auto" (L-BFGS up to LBFGS_LIMIT images x classes)
    sgd_epochs: int = 30
    sgd_batch_size: int = 1024
    sgd_lr: float = 0.1

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise UserError(f"unknown probe solver {self.solver!r}; choose one of: {', '.join(SOLVERS)}")

    def resolve_solver(self, n: int, num_classes: int) -> str:
        if self.solver != "auto":
            return self.solver
        return "lbfgs" if n * num_classes <= LBFGS_LIMIT else "sgd"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "weight_decays": list(self.weight_decays),
                "solvers": "lbfgs: full-batch L-BFGS (strong Wolfe); sgd: minibatch SGD, Nesterov 0.9, cosine lr",
                "features": "global, standardized with training-feature mean/std"}


class LinearProbe(nn.Module):
    """`(B, C)` global features -> `(B, K)` logits: standardization then one linear layer."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.linear = nn.Linear(num_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features.float() - self.mean) / self.std)

    @property
    def num_classes(self) -> int:
        return self.linear.out_features


class ProbedEncoder(nn.Module):
    """`probe ∘ encoder`: images in [0, 1] `(B, 3, H, W)` -> logits `(B, K)`; what attacks and
    corruption analyses classify with."""

    def __init__(self, encoder: Encoder, probe: LinearProbe):
        super().__init__()
        self.encoder = encoder
        self.probe = probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(self.encoder.forward_global(x).float())


def _zero_linear(dim: int, num_classes: int, device: torch.device) -> nn.Linear:
    linear = nn.Linear(dim, num_classes).to(device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


def _lbfgs(x: torch.Tensor, y: torch.Tensor, num_classes: int, wd: float, max_iter: int,
           init: nn.Linear | None = None) -> nn.Linear:
    """Full-batch L-BFGS on `CE + wd/2 ||W||^2`, from `init` (copied) or zeros."""
    linear = _zero_linear(x.shape[1], num_classes, x.device)
    if init is not None:
        linear.load_state_dict(init.state_dict())
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * wd * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return linear


def _sgd(x: torch.Tensor, y: torch.Tensor, num_classes: int, wd: float, protocol: ProbeProtocol,
         init: nn.Linear | None = None) -> nn.Linear:
    """Minibatch SGD (Nesterov momentum 0.9, cosine lr, seeded order) on `CE + wd/2 ||W||^2`."""
    linear = _zero_linear(x.shape[1], num_classes, x.device)
    if init is not None:
        linear.load_state_dict(init.state_dict())
    opt = torch.optim.SGD(linear.parameters(), lr=protocol.sgd_lr, momentum=0.9, nesterov=True)
    g = torch.Generator().manual_seed(protocol.seed)
    steps_per_epoch = math.ceil(len(y) / protocol.sgd_batch_size)
    total, step = protocol.sgd_epochs * steps_per_epoch, 0
    with torch.enable_grad():
        for _ in range(protocol.sgd_epochs):
            order = torch.randperm(len(y), generator=g).to(x.device)
            for start in range(0, len(y), protocol.sgd_batch_size):
                idx = order[start:start + protocol.sgd_batch_size]
                for group in opt.param_groups:
                    group["lr"] = protocol.sgd_lr * 0.5 * (1 + math.cos(math.pi * step / total))
                opt.zero_grad()
                loss = F.cross_entropy(linear(x[idx]), y[idx]) + 0.5 * wd * linear.weight.pow(2).sum()
                loss.backward()
                opt.step()
                step += 1
    return linear


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy as correct / n in float64 (so equal counts give equal numbers everywhere)."""
    return int((logits.argmax(1) == labels).sum()) / max(len(labels), 1)


def fit_probe(train: Features, num_classes: int, protocol: ProbeProtocol = ProbeProtocol(),
              device: torch.device | str = "cpu") -> tuple[LinearProbe, dict[str, Any]]:
    """Fit the probe on training features; returns it with a report of the weight-decay search."""
    x, y = train.features.to(device).float(), train.labels.to(device)
    keep = y >= 0
    x, y = x[keep], y[keep]
    if len(y) < 2 * num_classes:
        raise UserError(f"only {len(y)} labelled training images for {num_classes} classes; "
                        "the probe needs more (raise --n-train)")
    if int(y.max()) >= num_classes:
        raise UserError(f"training labels go up to {int(y.max())}, but the dataset has {num_classes} classes")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    solver = protocol.resolve_solver(len(y), num_classes)

    def fit(zs: torch.Tensor, ys: torch.Tensor, wd: float, init: nn.Linear | None) -> nn.Linear:
        if solver == "lbfgs":
            return _lbfgs(zs, ys, num_classes, wd, protocol.max_iter, init)
        return _sgd(zs, ys, num_classes, wd, protocol, init)

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(protocol.seed)
    perm = torch.randperm(len(y), generator=g).to(device)
    n_hold = max(1, int(round(protocol.holdout_fraction * len(y))))
    hold, rest = perm[:n_hold], perm[n_hold:]
    z_rest, y_rest = z[rest], y[rest]
    search, fits, previous = {}, {}, None
    for wd in sorted(protocol.weight_decays, reverse=True):  # strongest first: each fit warm-starts the next
        previous = fits[wd] = fit(z_rest, y_rest, wd, previous)
        with torch.no_grad():
            search[wd] = accuracy(previous(z[hold]), y[hold])
    best = max(search, key=lambda wd: (search[wd], wd))  # ties go to the stronger decay
    probe = LinearProbe(x.shape[1], num_classes).to(device)
    probe.mean.copy_(mean)
    probe.std.copy_(std)
    probe.linear = fit(z, y, best, fits[best])
    with torch.no_grad():
        train_acc = accuracy(probe(x), y)
    report = {"weight_decay": best, "holdout_accuracy": {str(k): search[k] for k in protocol.weight_decays},
              "train_accuracy": train_acc, "n_train": int(len(y)), "n_holdout": n_hold, "solver": solver,
              "fit_seconds": round(time.perf_counter() - t0, 3)}
    return probe.cpu().eval(), report


@torch.no_grad()
def probe_accuracy(probe: LinearProbe, feats: Features) -> float:
    keep = feats.labels >= 0
    return accuracy(probe(feats.features[keep]), feats.labels[keep])


def save_probe(folder: Path, probe: LinearProbe, record: dict[str, Any]) -> None:
    """Write `probe.safetensors` then `probe.json` (its protocol, accuracies, identity) atomically."""
    from safetensors.torch import save as st_save

    tensors = {k: v.detach().cpu().contiguous() for k, v in probe.state_dict().items()}
    write_bytes_atomic(folder / PROBE_WEIGHTS, st_save(tensors))
    write_json_atomic(folder / PROBE_JSON, record)


def load_probe(folder: Path) -> LinearProbe | None:
    """The saved probe, or None when absent or damaged (it is then refitted)."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / PROBE_WEIGHTS))
        probe = LinearProbe(tensors["mean"].shape[0], tensors["linear.weight"].shape[0])
        probe.load_state_dict(tensors)
    except Exception:  # missing or damaged: refit
        return None
    return probe.eval()
