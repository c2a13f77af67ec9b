"""Data-parallel training under `torchrun`: process-group setup and the collectives the methods use.

`torchrun --nproc_per_node N -m co_ssl_train ...` starts N processes with RANK / WORLD_SIZE /
LOCAL_RANK in the environment; `init_distributed` joins them (nccl on GPU, gloo on CPU) with a
timeout, so when one rank dies the others fail their next collective within that time instead of
hanging (torchrun also stops the remaining workers as soon as one exits with an error). Without
those variables everything here is a no-op for a single process.

Gradients: `gather_with_grad` all-gathers embeddings so contrastive losses see every rank's
negatives, and routes the gradient of every rank's loss back to the rank that produced each
embedding (an all-reduce in the backward pass). With DDP averaging parameter gradients over ranks,
the result is the gradient of the mean of the ranks' losses, as on one device with the whole batch.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from co_ssl_train.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, local rank and backend (None: single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def to_json(self) -> dict:
        return {"world_size": self.world_size, "backend": self.backend}


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str, timeout_s: float) -> DistContext:
    """Join the process group torchrun describes, or return a single-process context.

    `device` is the `--device` setting: with 'auto' or 'cuda', each rank takes GPU LOCAL_RANK and
    nccl; with 'cpu' (or no GPU), gloo.
    """
    if not launched_by_torchrun():
        return DistContext()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} asked for, but CUDA is not available here; use --device cpu")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs; "
                            "lower --nproc_per_node")
        torch.cuda.set_device(local_rank)
        # nccl collectives that time out abort the process instead of blocking forever
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss depends on this rank's rows
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n:(dist.get_rank() + 1) * n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """`(B, ...)` on each rank -> `(world * B, ...)`, rank order, differentiable (see module doc)."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """`(B, ...)` on each rank -> `(world * B, ...)` in rank order, without gradient."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of `x` over ranks (a new tensor; `x` itself is left alone)."""
    if world_size() == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def all_gather_object(obj):
    """`[obj of rank 0, obj of rank 1, ...]` (a single-item list without a process group)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


@torch.no_grad()
def replica_fingerprint(module: nn.Module) -> list[float]:
    """Two float64 numbers that differ when any parameter differs (in practice): the sum of every
    parameter and a position-weighted sum."""
    total = torch.zeros(2, dtype=torch.float64)
    for i, p in enumerate(module.parameters()):
        flat = p.detach().double().flatten().cpu()
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64).mul_(1e-6).add_(i + 1)
        total += torch.stack([flat.sum(), (flat * weights).sum()])
    return total.tolist()


def check_replicas(module: nn.Module) -> list[list[float]]:
    """Every rank's `replica_fingerprint`; raises RuntimeError when the ranks' weights differ."""
    prints = all_gather_object(replica_fingerprint(module))
    if any(p != prints[0] for p in prints):
        raise RuntimeError(f"the ranks' weights diverged (fingerprints {prints}); this is a bug, please report it")
    return prints


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
