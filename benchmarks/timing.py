"""What the benchmark scripts share: a synchronized median timer and the synthetic images they time.

Not a benchmark itself (no `main`); the scripts import it so that none imports another script.
"""

from __future__ import annotations

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of `fn()` over `repeats` runs, after one warm-up run."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_images(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` synthetic shape images (uint8, `(n, 3, size, size)`) and their 10-class labels."""
    from co_ssl_train.data.datasets import resize_uint8
    from co_ssl_train.data.synthetic import make_images as shapes

    images, labels = shapes(n, seed, num_classes=10)
    return resize_uint8(images, size), labels
