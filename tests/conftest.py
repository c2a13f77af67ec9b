"""Shared fixtures: a tiny trained run on the synthetic dataset, an isolated feature cache, and
helpers to run the command lines in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

TINY = dict(dataset="synthetic", arch="resnet10", width=8, proj_hidden=32, proj_dim=16, batch_size=32,
            epochs=1, max_steps=2, warmup_epochs=0.0, progress=False, lr=0.5)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CO_SSL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs (byol and co-byol, 2 steps each) on the synthetic dataset."""
    from co_ssl_train.config import TrainConfig
    from co_ssl_train.train import train

    out = tmp_path_factory.mktemp("checkpoints")
    return {m: train(TrainConfig(method=m, out=str(out), run_name=f"tiny-{m}", **TINY)) for m in ("byol", "co-byol")}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <args>` and capture its output."""
    full_env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=full_env,
                          timeout=300)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
