"""Row (e) of `robustness_throughput.py`: the warm corruption sweep on 1 rank against N ranks.

The sweep is `coanalysis robustness --only corruptions` over every corruption and severity (95
cells plus clean) of one small checkpoint on the synthetic test split, with the corrupted images
already in the uint8 cache, so what is timed is the forward-bound part: reading the cached cells
and classifying them. It runs once in one process and once under `torchrun --nproc_per_node N`,
each from a results folder that already holds the model's probe; a second, no-op run of each
(every cell stored) gives the start-up cost (interpreter, torch, rendezvous, data), which is
subtracted. On a CPU every rank gets `cores // N` threads, the single process too, so the
comparison is 1 rank against N ranks of the same size; on a GPU each rank takes one GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tiny_run(out: Path, arch: str, width: int | None, size: int) -> Path:
    """A co-ssl run of one training step on the synthetic data (the weights do not matter here)."""
    from co_ssl_train.config import TrainConfig
    from co_ssl_train.train import train

    extra = {"width": width} if width is not None else {}
    return train(TrainConfig(method="byol", dataset="synthetic", arch=arch, image_size=size, proj_hidden=64,
                             proj_dim=32, batch_size=32, epochs=1, max_steps=1, warmup_epochs=0.0, progress=False,
                             device="cpu", out=str(out), run_name="scaling", **extra))


def _timed(cmd: list[str], env: dict, timeout: float) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed: {done.stderr[-2000:]}")
    return time.perf_counter() - t0


def measure_scaling(ranks: int, device: str, work: Path, *, arch: str = "resnet10", width: int | None = 16,
                    size: int = 32, corruptions: str = "all", severities: str = "1,2,3,4,5",
                    timeout: float = 600) -> dict:
    """Seconds of the warm sweep on 1 rank and on `ranks` ranks, start-up removed, and their ratio."""
    import torch

    cpu = device == "cpu" or not torch.cuda.is_available()
    cores = os.cpu_count() or 1
    threads = max(1, cores // ranks) if cpu else None
    env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet", "CO_SSL_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    run = _tiny_run(work / "runs", arch, width, size)
    args = ["robustness", "--ckpt", str(run), "--name", "m", "--dataset", "synthetic", "--only", "corruptions",
            "--corruptions", corruptions, "--severities", severities, "--device", "cpu" if cpu else "cuda",
            "--batch-size", "256", "--no-progress", "--corruption-workers", str(cores)]
    one = [sys.executable, "-m", "coanalysis"]
    many = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
            "-m", "coanalysis"]
    # the cold run fills the corruption and feature caches and fits the probe; it is not timed
    cold = _timed([*one, *args, "--out", str(work / "cold")], env, timeout)
    seconds = {}
    for label, launcher in (("1", one), (str(ranks), many)):
        out = work / f"ranks-{label}"
        out.mkdir(parents=True)
        shutil.copytree(work / "cold" / "m", out / "m", ignore=shutil.ignore_patterns("corruptions.json"))
        total = _timed([*launcher, *args, "--out", str(out)], env, timeout)
        startup = _timed([*launcher, *args, "--out", str(out)], env, timeout)  # every cell stored: start-up only
        seconds[label] = {"total_s": total, "startup_s": startup, "sweep_s": max(total - startup, 1e-9)}
    speedup = seconds["1"]["sweep_s"] / seconds[str(ranks)]["sweep_s"]
    return {"what": "warm corruption sweep (cached uint8 cells) through coanalysis robustness, 1 rank vs "
                    f"{ranks} ranks under torchrun; start-up (a no-op re-run) subtracted",
            "ranks": ranks, "device": "cpu" if cpu else "cuda", "threads_per_rank": threads,
            "model": {"arch": arch, "width": width, "image_size": size}, "data": "synthetic test split (256 images)",
            "corruptions": corruptions, "severities": severities, "cold_run_s": cold, "runs": seconds,
            "speedup": speedup, "target_speedup": 1.7 if cpu and ranks == 2 else round(0.85 * ranks, 2)}
