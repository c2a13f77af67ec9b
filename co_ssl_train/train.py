"""The training procedure, top to bottom: `train(cfg) -> run directory`.

Phases: setup, data, model, optimizer, schedules, resume, loop. In-memory datasets live on the
training device as uint8 and are augmented there, a batch at a time, with per-image random
parameters; folder datasets decode in DataLoader workers. Every random stream (data order,
augmentation, initialization) is seeded and saved, so `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from co_ssl_train import checkpoint
from co_ssl_train.atomic import write_text_atomic
from co_ssl_train.config import TrainConfig
from co_ssl_train.data import FolderDataset, ImageDataset, get_spec, load_dataset
from co_ssl_train.data.augment import ViewAugment, augment_batch, byol_views
from co_ssl_train.errors import UserError
from co_ssl_train.methods import get_method
from co_ssl_train.models import IMAGENET_MEAN, IMAGENET_STD, build_encoder
from co_ssl_train.optim import build_optimizer, param_groups, set_lr_wd
from co_ssl_train.schedules import ema_momentum, warmup_cosine

# Fields that may differ when resuming: they change how the run executes, not what it computes.
RESUME_OVERRIDES = ("max_steps", "device", "progress", "workers", "threads", "save_every", "compile", "resume")
LOG_FILE = "log.jsonl"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but CUDA is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def resolve_config(cfg: TrainConfig, image_size: int) -> TrainConfig:
    """Decide the "auto" values and check settings, before any training starts."""
    get_method(cfg.method)
    stem = cfg.stem if cfg.stem != "auto" else ("cifar" if image_size <= 64 else "imagenet")
    blur = cfg.blur if cfg.blur != "auto" else ("off" if image_size <= 64 else "on")
    checks = [
        (cfg.epochs >= 1, f"--epochs must be at least 1, got {cfg.epochs}"),
        (cfg.batch_size >= 2, f"--batch-size must be at least 2 (batch norm), got {cfg.batch_size}"),
        (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
        (0 < cfg.min_scale <= 1, f"--min-scale must be in (0, 1], got {cfg.min_scale}"),
        (0 <= cfg.local_weight and (cfg.weight_form != "convex" or cfg.local_weight <= 1),
         f"--local-weight must be >= 0 (and <= 1 in the convex form), got {cfg.local_weight}"),
        (0 <= cfg.ema < 1, f"--ema must be in [0, 1), got {cfg.ema}"),
        (cfg.local_grid >= 0, f"--local-grid must be >= 0, got {cfg.local_grid}"),
        (cfg.width >= 1, f"--width must be positive, got {cfg.width}"),
        (cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps must be at least 1, got {cfg.max_steps}"),
        (cfg.subset is None or cfg.subset >= 1, f"--subset must be at least 1, got {cfg.subset}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return dataclasses.replace(cfg, stem=stem, blur=blur, image_size=image_size)


def dataset_normalization(dataset, mode: str) -> tuple[list[float], list[float]]:
    """Mean/std stored in the encoder: of the training images (up to 10 000), ImageNet's, or none."""
    if mode == "none":
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if mode == "imagenet" or not isinstance(dataset, ImageDataset):
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    step = max(1, len(dataset) // 10_000)
    x = dataset.images[::step].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """`(steps, batch_size)` image indices of one epoch: a seeded permutation, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    steps = n // batch_size
    return perm[: steps * batch_size].view(steps, batch_size)


def epoch_batches(dataset, order: torch.Tensor, start: int, device: torch.device,
                  workers: int) -> Iterator[torch.Tensor]:
    """uint8 image batches on `device`, from step `start` of the epoch's `order`."""
    if isinstance(dataset, ImageDataset):
        for idx in order[start:]:
            yield dataset.images[idx.to(dataset.images.device)]
        return
    flat = order[start:].reshape(-1).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, flat), batch_size=order.shape[1],
                                         shuffle=False, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    for images, _ in loader:
        yield images.to(device, non_blocking=True)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True,
                leave=False)


def run_dir_for(cfg: TrainConfig) -> Path:
    name = cfg.run_name or f"{cfg.method}-{cfg.arch}-{cfg.dataset}"
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"--run-name {name!r} is not a valid folder name")
    return Path(cfg.out) / name


def _merge_resumed(cfg: TrainConfig, stored: dict[str, Any]) -> TrainConfig:
    """The stored config, with this command's execution-only settings; conflicts are refused."""
    default = TrainConfig()
    merged = TrainConfig.from_json(stored)
    for f in dataclasses.fields(TrainConfig):
        given, before = getattr(cfg, f.name), getattr(merged, f.name)
        if f.name in RESUME_OVERRIDES:
            setattr(merged, f.name, given)
        elif given != before and given != getattr(default, f.name) and f.name not in ("image_size", "stem", "blur"):
            raise UserError(f"--resume: --{f.name.replace('_', '-')} {given} differs from the run's {before}; "
                            "drop the flag to continue the run, or start a new --run-name")
    return merged


def train(cfg: TrainConfig) -> Path:
    """Train one model as `cfg` says; returns the run directory (see `co_ssl_train.checkpoint`)."""
    # ---- setup ---------------------------------------------------------------------------------
    run_dir = run_dir_for(cfg)
    resuming = cfg.resume and (run_dir / checkpoint.STATE_FILE).is_file()
    if resuming:
        cfg = _merge_resumed(cfg, checkpoint.read_meta(run_dir)["config"])
    elif (run_dir / checkpoint.META_FILE).exists():
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --run-name to start another")
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)

    # ---- data ----------------------------------------------------------------------------------
    spec = get_spec(cfg.dataset)
    dataset = load_dataset(cfg.dataset, cfg.split or spec.train_split, root=cfg.data_root, download=cfg.download,
                           image_size=cfg.image_size)
    cfg = resolve_config(cfg, cfg.image_size or dataset.info.image_size)
    if cfg.subset is not None and cfg.subset < len(dataset):
        dataset = dataset.subset(torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.subset])
    if len(dataset) < cfg.batch_size:
        raise UserError(f"{cfg.dataset} {dataset.info.split} has {len(dataset)} images, fewer than "
                        f"--batch-size {cfg.batch_size}; lower the batch size")
    if isinstance(dataset, ImageDataset):
        dataset.images = dataset.images.to(device)  # kept on the device as uint8
    views: tuple[ViewAugment, ...] = byol_views(cfg.image_size, cfg.min_scale, blur=cfg.blur == "on")

    # ---- model ---------------------------------------------------------------------------------
    mean, std = dataset_normalization(dataset, cfg.normalization)
    encoder = build_encoder(cfg.arch, {"stem": cfg.stem, "width": cfg.width}, mean=mean, std=std,
                            local_layer=cfg.local_layer)
    with torch.no_grad():
        h = encoder.forward_local(torch.zeros(2, 3, cfg.image_size, cfg.image_size)).shape[-1]
    if cfg.local_grid > h:
        raise UserError(f"--local-grid {cfg.local_grid} is larger than the {h}x{h} local map of {cfg.arch} "
                        f"at {cfg.image_size} px; use at most {h}")
    method = get_method(cfg.method).build(encoder, cfg).to(device)
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    step_fn = torch.compile(method) if cfg.compile else method

    # ---- optimizer and schedules -----------------------------------------------------------------
    groups = param_groups([m for m in method.online_modules()])
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.weight_decay)
    steps_per_epoch = len(dataset) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    lr_schedule = warmup_cosine(cfg.lr * cfg.batch_size / 256, 0.0, total_steps,
                                warmup_steps=round(cfg.warmup_epochs * steps_per_epoch))
    wd_schedule = torch.full((total_steps,), cfg.weight_decay, dtype=torch.float64)
    ema_schedule = ema_momentum(cfg.ema, total_steps)
    stop_step = min(total_steps, cfg.max_steps or total_steps)

    # ---- resume --------------------------------------------------------------------------------
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, created, history = 0, None, []
    if resuming:
        state = checkpoint.load_state(run_dir, map_location=device)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        aug_gen.set_state(state["rng"]["augment"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        step, created, history = int(state["step"]), state.get("created"), _read_log(run_dir)
        if step >= stop_step:
            print(f"{run_dir}: already trained to step {step}; nothing to do")
            return run_dir
        print(f"resuming {run_dir} at step {step} of {stop_step}")

    def save(epoch_done: int, metrics: dict[str, float]) -> None:
        state = {"schema_version": checkpoint.SCHEMA_VERSION, "step": step, "created": created or "",
                 "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": {"augment": aug_gen.get_state(), "torch": torch.get_rng_state()}}
        meta = {"method": cfg.method, "config": cfg.to_json(), "dataset": dataset.info.to_json(),
                "input_size": cfg.image_size, "epoch": epoch_done, "step": step, "total_steps": total_steps,
                "finished": step >= total_steps, "metrics": metrics, "exported": "online encoder"}
        if created:
            meta["created"] = created
        checkpoint.save_run(run_dir, method.encoder, meta, state)

    # ---- loop ----------------------------------------------------------------------------------
    created = created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    method.train()
    metrics: dict[str, float] = history[-1] if history else {}
    bar = _progress(stop_step, step, cfg.progress, run_dir.name)
    while step < stop_step:
        epoch, start = divmod(step, steps_per_epoch)
        order = batch_indices(len(dataset), cfg.batch_size, cfg.seed, epoch)
        sums: dict[str, torch.Tensor] = {}
        t0, seen = time.perf_counter(), 0
        for images in epoch_batches(dataset, order, start, device, cfg.workers):
            batch_views = [augment_batch(images, v, aug_gen) for v in views]
            if cfg.channels_last:
                batch_views = [v.contiguous(memory_format=torch.channels_last) for v in batch_views]
            set_lr_wd(optimizer, float(lr_schedule[step]), float(wd_schedule[step]))
            with _autocast(device, precision):
                loss, logs = step_fn(batch_views)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.momentum_update(float(ema_schedule[step]))
            step += 1
            seen += images.shape[0]
            for k, v in {"loss": loss.detach(), **logs}.items():
                sums[k] = sums.get(k, 0) + v.float()
            if step % 10 == 0 or step == stop_step:
                current = float(loss.detach())
                if not math.isfinite(current):
                    raise UserError(f"the loss became {current} at step {step}; lower --lr or use --precision fp32 "
                                    f"(last good checkpoint kept in {run_dir})")
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{current:.3f}", lr=f"{lr_schedule[step - 1]:.3g}", img_s=f"{rate:.0f}")
            bar.update(1)
            epoch_end = step % steps_per_epoch == 0
            if epoch_end or step >= stop_step or (cfg.save_every and step % cfg.save_every == 0):
                steps_done = step - (epoch * steps_per_epoch + start)
                metrics = {k: float(v) / steps_done for k, v in sums.items()}
                metrics.update(epoch=step / steps_per_epoch, step=step, lr=float(lr_schedule[step - 1]),
                               images_per_s=seen / max(time.perf_counter() - t0, 1e-9))
                if epoch_end:
                    history.append(metrics)
                    _write_log(run_dir, history)
                save(step // steps_per_epoch, metrics)
            if epoch_end or step >= stop_step:
                break
    bar.close()
    print(f"{run_dir}: step {step}/{total_steps}, loss {metrics.get('loss', float('nan')):.4f}")
    return run_dir


def _read_log(run_dir: Path) -> list[dict]:
    path = run_dir / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_log(run_dir: Path, history: list[dict]) -> None:
    """The per-epoch JSONL log, rewritten atomically (it is small)."""
    write_text_atomic(run_dir / LOG_FILE, "".join(json.dumps(h) + "\n" for h in history))
