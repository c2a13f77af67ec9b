"""Data parallelism on CPU with gloo: the gathered losses give the single-process gradient, a
2-process torchrun run keeps its replicas identical and learns, and a dead rank stops the others."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from co_ssl_train import distributed
from co_ssl_train.methods.bagssl import bag_loss
from co_ssl_train.methods.mocov3 import mocov3_loss
from co_ssl_train.methods.simclr import info_nce, nt_xent
from co_ssl_train.methods.vicreg import gather_batch, vicreg_loss
from tests.conftest import free_port


# Each loss as the methods call it on one rank's rows: (za, zb) -> scalar.
LOSSES = {
    "nt_xent": lambda za, zb: nt_xent(za, zb, 0.5),
    "info_nce_positions": lambda za, zb: info_nce(torch.stack([za, 2 * za, za * za]), zb, 0.3),
    "mocov3": lambda za, zb: mocov3_loss(za, zb, 0.2),
    "vicreg": lambda za, zb: vicreg_loss(gather_batch(za), gather_batch(zb)),
    "bag": lambda za, zb: bag_loss(gather_batch(torch.stack([za, zb, za - zb]))),
}


def _full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)


def _gradient_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_distributed("cpu", 60)
    results = {}
    for name, loss_fn in LOSSES.items():
        a, b = (t.clone().requires_grad_(True) for t in _full_batch())  # replicated "parameters"
        rows = slice(rank * 4, (rank + 1) * 4)
        loss = loss_fn(a[rows], b[rows])
        loss.backward()
        grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in (a, b)]  # MoCo keys: no gradient
        for gr in grads:  # what DDP does to parameter gradients: average over ranks
            torch.distributed.all_reduce(gr)
            gr /= world
        results[name] = {"loss": distributed.all_reduce_mean(loss.detach()), "grad_a": grads[0], "grad_b": grads[1]}
    if rank == 0:
        torch.save(results, out)
    distributed.shutdown()


def test_gathered_losses_give_the_single_process_gradient(tmp_path):
    """2 ranks x 4 rows, DDP-averaged, equal one process on all 8 rows: value and gradient."""
    out = tmp_path / "dist.pt"
    mp.start_processes(_gradient_worker, args=(2, free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    got = torch.load(out, weights_only=True)
    for name, loss_fn in LOSSES.items():
        a, b = (t.clone().requires_grad_(True) for t in _full_batch())
        loss = loss_fn(a, b)
        loss.backward()
        torch.testing.assert_close(got[name]["loss"], loss.detach(), rtol=1e-5, atol=1e-6, msg=name)
        for key, t in (("grad_a", a), ("grad_b", b)):
            expected = t.grad if t.grad is not None else torch.zeros_like(t)
            torch.testing.assert_close(got[name][key], expected, rtol=1e-4, atol=1e-6, msg=f"{name} {key}")
        assert got[name]["grad_a"].abs().sum() > 0


TRAIN_FLAGS = ["--dataset", "synthetic", "--arch", "resnet10", "--width", "4", "--proj-hidden", "32",
               "--proj-dim", "16", "--batch-size", "32", "--subset", "128", "--warmup-epochs", "0", "--lr", "0.5",
               "--device", "cpu", "--threads", "1", "--no-progress"]


# a tiny ViT under CO-DINO as the ViT recipes train it: DINO's head without BatchNorm, drop path, AdamW
# with clipping, a pooled local grid and 3 of its 4 positions drawn each step
VIT_FLAGS = ["--method", "co-dino", "--arch", "vit_tiny", "--vit-patch-size", "8", "--vit-dim", "24", "--vit-depth",
             "2", "--vit-heads", "2", "--dino-prototypes", "32", "--no-head-bn", "--drop-path", "0.1",
             "--optimizer", "adamw", "--lr", "1e-3", "--clip-grad", "3", "--local-grid", "2", "--local-positions", "3"]


@pytest.mark.parametrize("method", [["--method", "co-simclr"], VIT_FLAGS], ids=["co-simclr", "co-dino-vit"])
def test_torchrun_two_cpu_processes_stay_in_sync_and_learn(tmp_path, method):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "co_ssl_train",
           "--epochs", "4", *TRAIN_FLAGS, *method, "--out", str(tmp_path), "--run-name", "ddp"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    meta = json.loads((tmp_path / "ddp" / "meta.json").read_text())
    dist = meta["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    prints = dist["replica_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]  # every parameter equal on both ranks
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(math.isfinite(e["loss"]) for e in log)
    if "co-simclr" in method:  # DINO's loss may rise while its teacher sharpens: only SimCLR's must fall
        assert log[-1]["loss"] < log[0]["loss"]
    state = torch.load(tmp_path / "ddp" / "state.pt", weights_only=True)
    assert state["rng"]["augment"].shape[0] == 2  # each rank's augmentation stream, for exact resume


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["dead", "frozen"])
def test_a_dead_or_frozen_rank_stops_the_others_in_bounded_time(tmp_path, how):
    """A killed rank breaks the others' next collective at once; a frozen one after --dist-timeout (20 s)."""
    port = free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "co_ssl_train", "--method", "byol", "--epochs", "50", *TRAIN_FLAGS,
             "--save-every", "1", "--dist-timeout", "20", "--out", str(tmp_path), "--run-name", "dead"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    meta = Path(tmp_path / "dead" / "meta.json")
    deadline = time.time() + 120
    while not meta.exists() and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert meta.exists(), procs[0].stderr.read() if procs[0].poll() is not None else "no checkpoint in 120 s"
    procs[1].send_signal(how)
    stopped_at = time.time()
    try:
        code = procs[0].wait(timeout=90)
        waited = time.time() - stopped_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert code != 0 and waited < (20 if how == signal.SIGKILL else 60)


@pytest.mark.slow
def test_torchrun_resume_is_exact(tmp_path):
    """2 ranks: 2 steps, then --resume to 4, equals 4 steps straight (every rank's RNG stream is saved)."""
    def run(name: str, steps: int, *extra: str) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "co_ssl_train", "--method", "co-byol", "--epochs", "2", "--max-steps", str(steps), *TRAIN_FLAGS,
               "--out", str(tmp_path), "--run-name", name, *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, out.stderr[-3000:]

    run("straight", 6)
    run("resumed", 3)
    run("resumed", 6, "--resume")
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "encoder.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
