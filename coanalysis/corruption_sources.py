"""Corrupted images for the common-corruptions analysis (PROTOCOLS.md section 4), generated with
imagecorruptions or read from pre-rendered sets, and cached on disk as uint8.

This is the one module that calls `imagecorruptions` (package `imagecorruptions-imaug`).

Generated (`source="imagecorruptions"`): every image of the evaluation subset, uint8 H x W x 3 at
the evaluation resolution (after the evaluation resize/crop), is corrupted with its own seed
`corruption_seed(seed, corruption, severity, position)`. numpy's global generator is seeded with it
and the two corruptions that take a `seed=` argument (impulse_noise, glass_blur) get it too, so the
bytes equal `imagecorruptions.corrupt` called the same way (`corrupt_one`). imagecorruptions needs
images of at least 32 px: smaller ones are upsampled to 32 px (PIL bilinear) before corrupting and
resized back after; every cell records it and the report says so. The work is spread over worker
processes (`workers`; a pool kept for the life of the process), and each (subset,
corruption, severity, seed) is cached as uint8 under `<co-ssl cache>/corruptions`, so a second
checkpoint on the same data pays only its forward passes. glass_blur compiles a numba kernel on
first use in each process (about 3 s).

Pre-rendered (`detect_layout`):
- folders `<root>/<corruption>/<severity>/<class>/<file>` (ImageNet-C, Tiny-ImageNet-C; a category
  level `<root>/<group>/<corruption>/...` is accepted). Files are matched to the evaluation subset by
  (class folder, file name); when none match (the evaluation set has no such files), a seeded subset
  of the set's own files is used. Images already at the evaluation size are used as they are (no
  resize or crop); others are resized to it (recorded). Grey, CMYK and palette files are converted
  to RGB; a file that does not decode is skipped, counted and named.
- `.npy` files `<root>/<corruption>.npy` holding the 5 severities stacked, plus `<root>/labels.npy`
  (CIFAR-10-C, CIFAR-100-C). Rows are aligned with the evaluation split when it has as many images
  as one severity block, else a seeded subset is used.
A corruption or severity the set lacks comes back as `Missing` (with the reason); the rest runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from coanalysis.features import FeatureCache, default_cache_dir
from coanalysis.trainer import UserError

STANDARD = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
            "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
            "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = STANDARD + EXTRA
GROUPS = {"standard": STANDARD, "extra": EXTRA, "all": ALL, "noise": STANDARD[0:3], "blur": STANDARD[3:7],
          "weather": STANDARD[7:10], "digital": STANDARD[10:15]}
SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIDE = 32  # imagecorruptions refuses smaller images
SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")  # take seed=; the others draw from np.random
MAX_NAMED = 50  # undecodable files named per cell (all are counted)


def corruption_seed(seed: int, corruption: str, severity: int, position: int) -> int:
    """The seed of one image's corruption, in [0, 2**32) as numpy and numba require.

    Keyed by the corruption's name (never its list position) and the image's position in the
    evaluation subset, so it is the same whatever the batch, the worker or the other cells.
    """
    condition = zlib.crc32(f"{corruption}/{severity}".encode())
    mixed = (seed * 1_000_003 + condition * 100_003 + position * 7_919 + 12_345) % (2 ** 61 - 1)
    return int(mixed % (2 ** 32))


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """Corruption names, with group names (standard, extra, all, noise, blur, weather, digital) expanded."""
    out: list[str] = []
    for name in names:
        for c in GROUPS.get(name, (name,)):
            if c not in ALL:
                raise UserError(f"unknown corruption {c!r}; choose from: {', '.join(ALL)} "
                                f"(or the groups {', '.join(GROUPS)})")
            if c not in out:
                out.append(c)
    if not out:
        raise UserError("no corruption given")
    return tuple(out)


def _library_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("imagecorruptions-imaug")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---- generation (runs in worker processes) ----

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


def _corrupt_chunk(images: np.ndarray, corruption: str, severity: int, seeds: list[int]) -> np.ndarray:
    return np.stack([corrupt_one(img, corruption, severity, s) for img, s in zip(images, seeds)])


def _decode_files(paths: list[str], size: int) -> tuple[np.ndarray, list[bool], list[list[int] | None]]:
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


# ---- the worker pool ----

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


def _run_tasks(fn: Callable, tasks: list[tuple], workers: int) -> list[Any]:
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
                raise UserError(f"the corruption worker processes died twice; retry with fewer --workers "
                                f"(asked for {workers})") from None
    return []


def _chunk_size(n: int, side: int, workers: int) -> int:
    per_memory = max(1, (1 << 18) // max(side * side, 1))  # about 0.75 MB of pixels per task
    per_balance = max(1, -(-n // (4 * max(workers, 1))))  # at least 4 tasks per worker
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
    size = _chunk_size(n, images.shape[1], workers)
    tasks = [(images[i:i + size], corruption, severity, [int(s) for s in seeds[i:i + size]])
             for i in range(0, n, size)]
    return np.concatenate(_run_tasks(_corrupt_chunk, tasks, workers))


# ---- what a source returns ----

@dataclass(frozen=True)
class Corrupted:
    """Corrupted images uint8 `(N, 3, H, W)` (CPU), their labels `(N,)` and what to record about them."""

    images: torch.Tensor
    labels: torch.Tensor
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Missing:
    """A (corruption, severity) the pre-rendered set does not hold."""

    reason: str


def _nhwc(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `(N, 3, h, w)` -> uint8 `(N, 3, size, size)`, bilinear with antialiasing."""
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


class GeneratedSource:
    """imagecorruptions on the images of the evaluation subset (`ctx.images(n)`)."""

    kind = "imagecorruptions"

    def __init__(self, ctx, n: int | None, seed: int, workers: int):
        self.ctx, self.n, self.seed, self.workers = ctx, n, seed, workers

    def prepare(self) -> None:
        self.ctx.images(self.n)
        if self.workers > 1:
            start_pool(self.workers)

    def identity(self, corruption: str, severity: int) -> dict[str, Any]:
        return {"kind": "corrupted-images", "version": 1, "data": self.ctx.data.describe(), "n": self.n,
                "corruption": corruption, "severity": severity, "seed": self.seed,
                "generator": f"imagecorruptions-imaug {_library_version()}", "min_side": MIN_SIDE}

    def produce(self, corruption: str, severity: int) -> Corrupted:
        subset = self.ctx.images(self.n)
        seeds = [corruption_seed(self.seed, corruption, severity, int(p)) for p in subset.positions]
        out = corrupt_images(_nhwc(subset.images), corruption, severity, seeds, self.workers)
        side = min(subset.images.shape[-2:])
        notes = {"upsampled_to": MIN_SIDE} if side < MIN_SIDE else {}
        return Corrupted(_nchw(out), subset.labels.clone(), notes)


def detect_layout(root: Path) -> str:
    """'npy' (CIFAR-10-C / CIFAR-100-C) or 'folders' (ImageNet-C / Tiny-ImageNet-C) for a pre-rendered set."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"--corruptions-from {root} is not a folder; pass the folder holding the corruption "
                        "folders (ImageNet-C) or .npy files (CIFAR-10-C)")
    if any((root / f"{c}.npy").is_file() for c in ALL):
        return "npy"
    bases = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    if any((b / c).is_dir() for b in bases for c in ALL):
        return "folders"
    raise UserError(f"{root} holds no pre-rendered corruptions: expected <corruption>/<severity>/<class>/<file> "
                    f"folders (ImageNet-C, Tiny-ImageNet-C) or <corruption>.npy files (CIFAR-10-C), with names "
                    f"such as {', '.join(STANDARD[:3])}")


def _cell_dir(root: Path, corruption: str, severity: int) -> Path | None:
    for base in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
        folder = base / corruption / str(severity)
        if folder.is_dir():
            return folder
    return None


def _class_files(folder: Path) -> dict[tuple[str, str], Path]:
    """(class folder, file name) -> path of every regular file under `folder/<class>/`."""
    files = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files[(class_dir.name, path.name)] = path
    return files


def _seeded_subset(total: int, n: int | None, seed: int) -> torch.Tensor:
    if n is None or n >= total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:n].sort().values


class FolderSource:
    """ImageNet-C / Tiny-ImageNet-C folders `<root>/<corruption>/<severity>/<class>/<file>`."""

    kind = "folders"

    def __init__(self, ctx, root: Path, n: int | None, workers: int):
        self.ctx, self.root, self.n, self.workers = ctx, Path(root).expanduser().resolve(), n, workers
        self.classes = list(getattr(ctx.data.dataset, "classes", ()))
        self._listing: dict[tuple[str, int], dict] = {}

    def prepare(self) -> None:
        self.ctx.images(self.n)
        if self.workers > 1:
            start_pool(self.workers)

    def _files(self, corruption: str, severity: int) -> dict[tuple[str, str], Path] | None:
        key = (corruption, severity)
        if key not in self._listing:
            folder = _cell_dir(self.root, corruption, severity)
            self._listing[key] = {"folder": folder, "files": _class_files(folder) if folder is not None else None}
        return self._listing[key]["files"]

    def _select(self, files: dict[tuple[str, str], Path]) -> tuple[list[Path], list[int], dict[str, Any]]:
        """The files to classify with their labels, matched to the evaluation subset when possible."""
        index = {c: i for i, c in enumerate(self.classes)}
        samples = getattr(self.ctx.data.dataset, "samples", None)
        if samples is not None:
            subset = self.ctx.images(self.n)
            paths, labels, unmatched = [], [], 0
            for pos, label in zip(subset.positions.tolist(), subset.labels.tolist()):
                name = Path(samples[int(self.ctx.data.indices[pos])][0]).name
                path = files.get((self.classes[label], name))
                if path is None:
                    unmatched += 1
                else:
                    paths.append(path)
                    labels.append(label)
            if paths:
                return paths, labels, {"alignment": "files of the evaluation subset, by class and file name",
                                       "unmatched": unmatched}
        keys = sorted(files)
        unknown = sorted({c for c, _ in keys if c not in index})
        keys = [k for k in keys if k[0] in index]
        if not keys:
            raise UserError(f"the class folders of {self.root} (e.g. {unknown[0] if unknown else '?'}) are not classes "
                            f"of the evaluation dataset {self.ctx.data.info.name}; pass the matching --dataset")
        chosen = _seeded_subset(len(keys), self.n or len(self.ctx.data), self.ctx.data.seed)
        keys = [keys[i] for i in chosen.tolist()]
        notes: dict[str, Any] = {"alignment": f"seeded subset (seed {self.ctx.data.seed}) of the set's files"}
        if unknown:
            notes["unknown_class_folders"] = unknown[:MAX_NAMED]
        return [files[k] for k in keys], [index[c] for c, _ in keys], notes

    def identity(self, corruption: str, severity: int) -> dict[str, Any]:
        files = self._files(corruption, severity) or {}
        listing = hashlib.sha256()
        for (c, name), path in sorted(files.items()):
            st = path.stat()
            listing.update(f"{c}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return {"kind": "prerendered-folders", "version": 1, "root": str(self.root), "corruption": corruption,
                "severity": severity, "files": listing.hexdigest(), "data": self.ctx.data.describe(), "n": self.n}

    def produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        files = self._files(corruption, severity)
        if files is None:
            return Missing(f"no folder {corruption}/{severity} under {self.root}")
        if not files:
            return Missing(f"{self._listing[(corruption, severity)]['folder']} holds no class folders with files")
        paths, labels, notes = self._select(files)
        size = self.ctx.data.info.image_size
        chunk = _chunk_size(len(paths), size, self.workers)
        tasks = [([str(p) for p in paths[i:i + chunk]], size) for i in range(0, len(paths), chunk)]
        images, ok, resized = [], [], []
        for arr, good, original in _run_tasks(_decode_files, tasks, self.workers):
            images.append(arr)
            ok += good
            resized += original
        keep = torch.tensor(ok, dtype=torch.bool)
        bad = [str(p.relative_to(self.root)) for p, good in zip(paths, ok) if not good]
        notes.update({"files": len(paths), "undecodable_count": len(bad), "undecodable": bad[:MAX_NAMED]})
        sizes = sorted({tuple(r) for r, good in zip(resized, ok) if good and r is not None})
        if sizes:
            notes["resized_from"] = [list(s) for s in sizes[:MAX_NAMED]]
            notes["resized_to"] = size
        return Corrupted(_nchw(np.concatenate(images))[keep], torch.tensor(labels, dtype=torch.long)[keep], notes)


class NpySource:
    """CIFAR-10-C / CIFAR-100-C: `<root>/<corruption>.npy` (5 severities stacked) and `<root>/labels.npy`."""

    kind = "npy"

    def __init__(self, ctx, root: Path, n: int | None):
        self.ctx, self.root, self.n = ctx, Path(root).expanduser().resolve(), n

    def prepare(self) -> None:
        self.ctx.images(self.n)

    def identity(self, corruption: str, severity: int) -> dict[str, Any]:
        return {"kind": "prerendered-npy", "root": str(self.root), "corruption": corruption, "severity": severity}

    def _labels(self) -> np.ndarray | None:
        path = self.root / "labels.npy"
        if not path.is_file():
            return None
        try:
            return np.asarray(np.load(path, allow_pickle=False)).astype(np.int64).reshape(-1)
        except (ValueError, OSError) as e:
            raise UserError(f"{path} is not a readable labels file ({e}); fetch the set again") from None

    def produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        path = self.root / f"{corruption}.npy"
        if not path.is_file():
            return Missing(f"no file {path.name} in {self.root}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            return Missing(f"{path.name} could not be read ({e})")
        all_labels = self._labels()
        split_size = len(self.ctx.data.dataset)
        block = len(all_labels) // 5 if all_labels is not None and len(all_labels) % 5 == 0 else split_size
        if array.ndim not in (3, 4) or array.shape[0] < severity * block:
            return Missing(f"{path.name} holds {array.shape[0]} images, fewer than {severity} severities of {block}")
        notes: dict[str, Any] = {}
        if block == split_size:
            subset = self.ctx.images(self.n)
            rows = self.ctx.data.indices[subset.positions].numpy()
            labels = torch.from_numpy(all_labels[(severity - 1) * block + rows]) if all_labels is not None \
                else subset.labels.clone()
            mismatched = int((labels != subset.labels).sum())
            if mismatched > 0.01 * len(labels):
                raise UserError(f"labels.npy of {self.root} disagrees with the {self.ctx.data.info.name} "
                                f"{self.ctx.data.info.split} labels on {mismatched} of {len(labels)} images; "
                                "pass the --dataset this set was made from")
            notes["alignment"] = "rows of the evaluation subset"
            notes["label_mismatches"] = mismatched
        else:
            if all_labels is None:
                raise UserError(f"{self.root} has no labels.npy and its blocks of {block} images do not match "
                                f"the {split_size} images of the evaluation split")
            rows = _seeded_subset(block, self.n or len(self.ctx.data), self.ctx.data.seed).numpy()
            labels = torch.from_numpy(all_labels[(severity - 1) * block + rows])
            notes["alignment"] = f"seeded subset (seed {self.ctx.data.seed}) of the set's {block} images"
        pixels = np.asarray(array[(severity - 1) * block + rows])
        if pixels.ndim == 3:  # grey
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
        if pixels.dtype != np.uint8:
            pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        images = _nchw(pixels)
        size = self.ctx.data.info.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            notes["resized_from"] = [list(images.shape[-2:])]
            notes["resized_to"] = size
            images = _resize(images, size)
        return Corrupted(images, labels.long(), notes)


class CorruptionProvider:
    """A source behind the uint8 disk cache, with one cell of look-ahead.

    `get(c, s)` returns the images of one cell (from the cache when present); `prefetch(c, s)`
    starts producing the next cell in a background thread (its generation runs in the worker
    processes) while the current cell is classified.
    """

    def __init__(self, source, cache_dir: Path | None, use_cache: bool = True):
        self.source = source
        self.cache = FeatureCache(cache_dir) if use_cache else None
        self._pending: dict[tuple[str, int], tuple[threading.Thread, dict]] = {}

    def _load_or_produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        ident = self.source.identity(corruption, severity) if self.cache is not None else None
        if ident is not None:
            hit = self.cache.get(ident)
            if hit is not None and {"images", "labels", "notes"} <= set(hit):
                notes = json.loads(bytes(hit["notes"].tolist()).decode())
                return Corrupted(hit["images"], hit["labels"], notes)
        got = self.source.produce(corruption, severity)
        if ident is not None and isinstance(got, Corrupted):
            notes = torch.tensor(list(json.dumps(got.notes, sort_keys=True).encode()), dtype=torch.uint8)
            self.cache.put(ident, {"images": got.images, "labels": got.labels, "notes": notes})
        return got

    def get(self, corruption: str, severity: int) -> Corrupted | Missing:
        pending = self._pending.pop((corruption, severity), None)
        if pending is not None:
            thread, box = pending
            thread.join()
            if "error" in box:
                raise box["error"]
            return box["result"]
        return self._load_or_produce(corruption, severity)

    def prefetch(self, corruption: str, severity: int) -> None:
        if (corruption, severity) in self._pending:
            return
        self.source.prepare()  # shared inputs are built here, not in the thread
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self._load_or_produce(corruption, severity)
            except BaseException as e:  # handed to the thread that asks for this cell
                box["error"] = e

        # a daemon thread: an interrupted run does not wait for a look-ahead it will not use
        thread = threading.Thread(target=work, daemon=True, name=f"prefetch {corruption}/{severity}")
        thread.start()
        self._pending[(corruption, severity)] = (thread, box)


def default_corruption_cache() -> Path:
    """`<co-ssl cache>/corruptions` (the cache folder of `coanalysis.features`, one level up)."""
    return default_cache_dir().parent / "corruptions"


def make_source(ctx, source: str, root: str | None, n: int | None, seed: int, workers: int):
    if source == "imagecorruptions":
        return GeneratedSource(ctx, n, seed, workers)
    if root is None:
        raise UserError(f"corruption source {source!r} needs a folder (--corruptions-from DIR)")
    if source == "folders":
        return FolderSource(ctx, Path(root), n, workers)
    if source == "npy":
        return NpySource(ctx, Path(root), n)
    raise UserError(f"unknown corruption source {source!r}; use imagecorruptions, folders or npy")
