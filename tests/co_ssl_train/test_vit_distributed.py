"""CO-SSL on a ViT under data parallelism: two gloo ranks of DDP, each on half the batch, give the
gradients of one process on the whole batch (CO-DINO with DINO's BatchNorm-free ViT head, so no
statistic depends on how the batch is split; LayerNorm and attention act per image). The local loss
takes 7 of the 16 token positions (`--local-positions`): every rank seeds torch as the trainer does,
so all ranks draw the positions one process draws for the whole batch."""

from __future__ import annotations

import os

import torch
import torch.multiprocessing as mp

from co_ssl_train import distributed
from co_ssl_train.config import TrainConfig
from co_ssl_train.methods import METHODS
from co_ssl_train.models import build_encoder
from tests.conftest import free_port

VIT = {"patch_size": 8, "img_size": 32, "embed_dim": 24, "depth": 2, "num_heads": 2}


def _model():
    torch.manual_seed(0)
    cfg = TrainConfig(method="co-dino", dataset="synthetic", arch="vit_tiny", vit_patch_size=8, vit_dim=24,
                      vit_depth=2, vit_heads=2, proj_hidden=32, proj_dim=16, dino_prototypes=32, batch_size=8,
                      head_bn=False, local_positions=7).resolved(32)
    method = METHODS["co-dino"].build(build_encoder("vit_tiny", VIT), cfg)
    method.set_schedule_values(teacher_temp=0.05)
    return method


def _views() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.rand(8, 3, 32, 32, generator=g) for _ in range(2)]


def _grads(method) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in method.named_parameters() if p.requires_grad and p.grad is not None}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_distributed("cpu", 60)
    method = _model()
    ddp = torch.nn.parallel.DistributedDataParallel(method)
    rows = slice(rank * 4, (rank + 1) * 4)
    loss, logs = ddp([v[rows] for v in _views()])
    loss.backward()
    result = {"loss": distributed.all_reduce_mean(loss.detach()), "grads": _grads(method), "center": method.center}
    if rank == 0:
        torch.save(result, out)
    distributed.shutdown()


def test_ddp_on_a_vit_gives_the_single_process_gradient(tmp_path):
    out = tmp_path / "vit_ddp.pt"
    mp.start_processes(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    got = torch.load(out, weights_only=True)
    method = _model()
    loss, _ = method(_views())
    loss.backward()
    expected = _grads(method)
    torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["center"], method.center, rtol=1e-5, atol=1e-7)  # all-reduced batch center
    assert got["grads"].keys() == expected.keys()
    assert any(k.startswith("local.") for k in expected) and "encoder.backbone.cls_token" in expected
    for name, grad in expected.items():
        torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
