"""The worker processes that corrupt and decode images, and the one place that calls `imagecorruptions`.

numpy only (no torch), so that the workers, which preload this module, start light. glass_blur
compiles a numba kernel on first use in each process (about 3 s).
"""

from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

import numpy as np

from coanalysis.results.corruption_names import ALL, MIN_SIDE, SEEDED_BY_ARGUMENT, SEVERITIES
from coanalysis.models.trainer_io import UserError


def corrupt_one(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """`image` uint8 (H, W, 3) corrupted by imagecorruptions with `seed`; uint8 (H, W, 3).

    Equals `np.random.seed(seed); imagecorruptions.corrupt(image, severity=severity,
    corruption_name=corruption[, seed=seed])` for images of at least 32 px; smaller ones are
    upsampled to 32 px first and resized back after. numpy's global state is restored afterwards.
    """
    from imagecorruptions import corrupt
    from PIL import Image

    h, w = image.shape[:2]
    small = min(h, w) < MIN_SIDE
    x = image
    if small:
        scale = MIN_SIDE / min(h, w)
        x = np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
    kwargs = {"seed": seed} if corruption in SEEDED_BY_ARGUMENT else {}
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # spatter divides by zero on flat images; the output is still uint8
            out = corrupt(np.ascontiguousarray(x), severity=severity, corruption_name=corruption, **kwargs)
    finally:
        np.random.set_state(state)
    if small:
        out = np.asarray(Image.fromarray(out).resize((w, h), Image.BILINEAR))
    return out


def corrupt_chunk(images: np.ndarray, corruption: str, severity: int, seeds: list[int]) -> np.ndarray:
    return np.stack([corrupt_one(img, corruption, severity, s) for img, s in zip(images, seeds)])


def decode_files(paths: list[str], size: int) -> tuple[np.ndarray, list[bool], list[list[int] | None]]:
    """Decode image files into uint8 (B, size, size, 3) RGB; (images, decoded?, original [h, w] when resized)."""
    from PIL import Image

    out = np.zeros((len(paths), size, size, 3), np.uint8)
    ok, resized = [], []
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                original = None
                if img.size != (size, size):
                    original = [img.size[1], img.size[0]]
                    img = img.resize((size, size), Image.BILINEAR)
                out[i] = np.asarray(img, dtype=np.uint8)
            ok.append(True)
            resized.append(original)
        except (OSError, ValueError, SyntaxError):
            ok.append(False)
            resized.append(None)
    return out, ok, resized


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    try:
        import cv2

        cv2.setNumThreads(1)  # one thread per worker process: the processes are the parallelism
    except ImportError:
        pass


_POOLS: dict[int, ProcessPoolExecutor] = {}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def start_pool(workers: int) -> ProcessPoolExecutor:
    """The pool of `workers` processes, started once per process and reused by every cell.

    Workers fork from a forkserver that preloaded this module and imagecorruptions, never from
    this process: a fork of a process whose OpenCV, OpenMP or CUDA threads are running can
    deadlock. (As with any multiprocessing spawn, a script that calls this needs the
    `if __name__ == "__main__":` guard.) All workers are started here, from the calling thread.
    """
    if workers not in _POOLS:
        import multiprocessing

        mp = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
        if mp.get_start_method() == "forkserver":
            mp.set_forkserver_preload([__name__, "imagecorruptions"])
        pool = ProcessPoolExecutor(workers, mp_context=mp, initializer=_init_worker)
        for started in [pool.submit(os.getpid) for _ in range(workers)]:
            started.result()
        _POOLS[workers] = pool
    return _POOLS[workers]


def shutdown_pools() -> None:
    """Stop the worker processes (they are also stopped at exit)."""
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def run_tasks(fn: Callable, tasks: list[tuple], workers: int) -> list[Any]:
    """`[fn(*task) for task in tasks]`, in worker processes when `workers` > 1.

    At most 2 x workers tasks are queued at a time, so an interruption leaves little work behind.
    A pool whose worker died (out of memory, killed) is replaced once and the tasks rerun.
    """
    if workers <= 1:
        return [fn(*task) for task in tasks]
    for attempt in (0, 1):
        pool = start_pool(workers)
        results: list[Any] = []
        try:
            queue = iter(tasks)
            pending: list[Future] = [pool.submit(fn, *t) for _, t in zip(range(2 * workers), queue)]
            while pending:
                results.append(pending.pop(0).result())
                following = next(queue, None)
                if following is not None:
                    pending.append(pool.submit(fn, *following))
            return results
        except BrokenProcessPool:
            _POOLS.pop(workers, None)
            if attempt == 1:
                raise UserError(f"the corruption worker processes died twice; retry with fewer "
                                f"--corruption-workers (asked for {workers})") from None
    return []


def chunk_size(n: int, side: int, workers: int) -> int:
    """Images per task: about 0.75 MB of pixels, and at least 4 tasks per worker."""
    per_memory = max(1, (1 << 18) // max(side * side, 1))
    per_balance = max(1, -(-n // (4 * max(workers, 1))))
    return max(1, min(64, per_memory, per_balance))


def corrupt_images(images: np.ndarray, corruption: str, severity: int, seeds: Sequence[int],
                   workers: int = 1) -> np.ndarray:
    """Corrupt uint8 images `(N, H, W, 3)` (image i with `seeds[i]`) -> uint8 `(N, H, W, 3)`.

    `workers` > 1 spreads chunks of images over that many processes; the bytes do not depend on it.
    """
    if corruption not in ALL:
        raise UserError(f"unknown corruption {corruption!r}; choose from: {', '.join(ALL)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1..5, got {severity}")
    n = len(images)
    if n == 0:
        return images.copy()
    size = chunk_size(n, images.shape[1], workers)
    tasks = [(images[i:i + size], corruption, severity, [int(s) for s in seeds[i:i + size]])
             for i in range(0, n, size)]
    return np.concatenate(run_tasks(corrupt_chunk, tasks, workers))
