"""The training procedure, top to bottom: `train(cfg) -> run directory`.

Phases: setup (and torch.distributed under torchrun), data, model, optimizer, schedules, resume,
loop. In-memory datasets live on the training device as uint8 and are augmented there, a batch at
a time, with per-image random parameters; folder datasets decode in DataLoader workers. Under
torchrun every rank takes its slice of each global batch (the same seeded permutation on every
rank, as a DistributedSampler would), gradients are averaged by DDP, and rank 0 writes the
checkpoints. Every random stream (data order, augmentation of every rank, initialization) is
seeded and saved, so `--resume` continues exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from co_ssl_train import arch_options, checkpoint, distributed
from co_ssl_train.atomic import write_text_atomic
from co_ssl_train.config import TrainConfig
from co_ssl_train.data import ImageDataset, get_spec, load_dataset
from co_ssl_train.data.datasets import UNDECODABLE
from co_ssl_train.data.augment import augment_batch
from co_ssl_train.device import autocast, resolve_device, resolve_precision
from co_ssl_train.errors import UserError
from co_ssl_train.knn import embed, knn_accuracy, seeded_indices
from co_ssl_train.methods import METHODS, MethodSpec, get_method
from co_ssl_train.methods.bagssl import bag_of_patches
from co_ssl_train.methods.co import local_settings, local_stage
from co_ssl_train.methods.views import ViewPlan
from co_ssl_train.models import ARCHS, IMAGENET_MEAN, IMAGENET_STD, Encoder, build_encoder
from co_ssl_train.optim import build_optimizer, param_groups, set_lr_wd
from co_ssl_train.options import writable_dir
from co_ssl_train.schedules import cosine, ema_momentum, warmup_cosine

# Fields that may differ when resuming: they change how the run executes or is watched, not what it computes.
RESUME_OVERRIDES = ("max_steps", "device", "progress", "workers", "threads", "save_every", "compile", "resume",
                    "dist_timeout", "knn_every", "knn_k", "knn_temperature", "knn_bank", "knn_queries", "recipe")
# "auto" values decided at start
RESOLVED_FIELDS = ("image_size", "stem", "blur", "local_crops", "patch_size", "vit_patch_size")
LOG_FILE = "log.jsonl"


def resolve_config(cfg: TrainConfig, image_size: int, world_size: int = 1) -> TrainConfig:
    """Decide the "auto" values and check settings, before any training starts."""
    spec = get_method(cfg.method)
    if cfg.arch not in ARCHS:
        raise UserError(f"unknown architecture {cfg.arch!r}; choose one of: {', '.join(ARCHS)}")
    stem = cfg.stem if cfg.stem != "auto" else ("cifar" if image_size <= 64 else "imagenet")
    blur = cfg.blur if cfg.blur != "auto" else ("off" if image_size <= 64 else "on")
    crops = cfg.local_crops if cfg.local_crops is not None else (spec.local_crops or 0)
    patch = cfg.patch_size or max(4, image_size // 2)
    cfg = dataclasses.replace(cfg, vit_patch_size=arch_options.resolved_patch_size(cfg, image_size), patch_size=patch)
    multi_crop = [n for n, s in METHODS.items() if s.local_crops is not None]
    checks = [
        (cfg.epochs >= 1, f"--epochs must be at least 1, got {cfg.epochs}"),
        (cfg.batch_size >= 2, f"--batch-size must be at least 2 (batch norm), got {cfg.batch_size}"),
        (cfg.batch_size % world_size == 0, f"--batch-size {cfg.batch_size} does not divide by the {world_size} "
                                           f"processes; use a multiple of {world_size}"),
        (cfg.batch_size // world_size >= 2, f"--batch-size {cfg.batch_size} leaves fewer than 2 images per process "
                                            "(batch norm); raise it"),
        (cfg.lr > 0, f"--lr must be positive, got {cfg.lr}"),
        (0 < cfg.min_scale <= 1, f"--min-scale must be in (0, 1], got {cfg.min_scale}"),
        (0 <= cfg.local_weight and (cfg.weight_form != "convex" or cfg.local_weight <= 1),
         f"--local-weight must be >= 0 (and <= 1 in the convex form), got {cfg.local_weight}"),
        (0 <= cfg.ema < 1, f"--ema must be in [0, 1), got {cfg.ema}"),
        (cfg.ema <= cfg.ema_end <= 1, f"--ema-end must be in [--ema, 1], got {cfg.ema_end}"),
        (cfg.local_grid >= 0, f"--local-grid must be >= 0, got {cfg.local_grid}"),
        (cfg.width >= 1, f"--width must be positive, got {cfg.width}"),
        (cfg.rf == 0 or "rf" in ARCHS[cfg.arch].options,
         f"--rf applies to rf_resnet18 only; {cfg.arch} has a fixed receptive field (co-ssl-train archs)"),
        (cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps must be at least 1, got {cfg.max_steps}"),
        (cfg.subset is None or cfg.subset >= 1, f"--subset must be at least 1, got {cfg.subset}"),
        (crops >= 0, f"--local-crops must be >= 0, got {crops}"),
        (crops == 0 or spec.local_crops is not None,
         f"--local-crops: multi-crop is offered for {', '.join(multi_crop)}, not {cfg.method}"),
        (cfg.method != "byol-mc" or crops >= 1, "byol-mc needs --local-crops of at least 1"),
        (0 <= cfg.local_crop_size <= image_size, f"--local-crop-size must be in [0, {image_size}]"),
        (0 < cfg.local_crop_scale_min < cfg.local_crop_scale_max <= 1,
         "--local-crop-scale-min and --local-crop-scale-max must satisfy 0 < min < max <= 1"),
        (4 <= patch <= image_size, f"--patch-size must be in [4, {image_size}] px, got {patch}"),
        (cfg.patches >= 2, f"--patches must be at least 2 (a bag), got {cfg.patches}"),
        (cfg.temperature > 0 and cfg.dino_teacher_temp > 0 and cfg.dino_warmup_teacher_temp > 0
         and cfg.dino_student_temp > 0, "temperatures must be positive"),
        (cfg.dino_prototypes >= 2, f"--dino-prototypes must be at least 2, got {cfg.dino_prototypes}"),
        (cfg.knn_every >= 0 and cfg.knn_k >= 1 and cfg.knn_bank >= 1 and cfg.knn_queries >= 1,
         "--knn-every must be >= 0 and --knn-k, --knn-bank, --knn-queries >= 1"),
        (cfg.dist_timeout > 0, f"--dist-timeout must be positive, got {cfg.dist_timeout}"),
        (cfg.save_every >= 0, f"--save-every must be >= 0, got {cfg.save_every}"),
        *arch_options.checks(cfg, image_size),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return dataclasses.replace(cfg, stem=stem, blur=blur, image_size=image_size, local_crops=crops, patch_size=patch)


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


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's columns of an epoch's `(steps, global batch)` order: `(steps, batch / world)`."""
    per_rank = order.shape[1] // world_size
    return order[:, rank * per_rank:(rank + 1) * per_rank]


def epoch_batches(dataset, order: torch.Tensor, start: int, device: torch.device, workers: int,
                  skipped: list[str] | None = None) -> Iterator[torch.Tensor]:
    """uint8 image batches on `device`, from step `start` of the epoch's `order`. Files of a folder
    set that do not decode are left out of their batch and appended to `skipped`; a batch left
    with fewer than 2 images (batch norm) is a UserError naming the files."""
    if isinstance(dataset, ImageDataset):
        for idx in order[start:]:
            yield dataset.images[idx.to(dataset.images.device)]
        return
    flat = order[start:].reshape(-1).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, flat), batch_size=order.shape[1],
                                         shuffle=False, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    size = order.shape[1]
    for b, (images, labels) in enumerate(loader):
        keep = labels != UNDECODABLE
        if not keep.all():
            bad = [dataset.samples[flat[b * size + int(i)]][0] for i in torch.nonzero(~keep).flatten()]
            if skipped is not None:
                skipped.extend(bad)
            if int(keep.sum()) < 2:
                raise UserError(f"{len(bad)} of the {size} images of a training batch did not decode (e.g. {bad[0]}); "
                                f"check the image files under {dataset.info.source}")
            images = images[keep]
        yield images.to(device, non_blocking=True)


def make_views(images: torch.Tensor, plan: ViewPlan, generator: torch.Generator,
               channels_last: bool) -> list[torch.Tensor]:
    """uint8 `(B, 3, H, W)` -> the method's views, each `(B, 3, S_v, S_v)` float in [0, 1]; one batched
    augmentation call per plan entry (an entry of count c augments the batch repeated c times)."""
    views: list[torch.Tensor] = []
    for view, count in plan:
        x = augment_batch(images.repeat(count, 1, 1, 1) if count > 1 else images, view, generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        views.extend(x.chunk(count))
    return views


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    """`--channels-last`, except on CPU with fewer than 8 channels in the first stage: there, torch's
    channels_last backward of a strided 1x1 convolution corrupts memory (seen with torch 2.x)."""
    if arch_options.is_vit(cfg.arch):
        return False  # a ViT has one convolution (the patch embedding); its tokens are (B, N, C)
    return cfg.channels_last and (device.type == "cuda" or cfg.width >= 8)


def clip_gradients(parameters, max_norm: float) -> None:
    """DINO's clipping (its utils.clip_gradients): each parameter's gradient scaled down to l2 norm
    `max_norm` when larger, tensor by tensor."""
    for p in parameters:
        if p.grad is not None:
            norm = p.grad.detach().norm(2)
            p.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))


def training_step(model: nn.Module, method: nn.Module, optimizer: torch.optim.Optimizer, views: list[torch.Tensor], *,
                  lr: float, weight_decay: float, momentum: float | None, schedule_values: dict[str, float],
                  device: torch.device, precision: str, clip_grad: float = 0.0,
                  frozen: tuple[nn.Parameter, ...] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimizer step on one batch of views; `model` is `method` or its DDP / compiled wrapper.
    `clip_grad` > 0: per-tensor gradient clipping (DINO); `frozen`: parameters that take no step now
    (DINO's last layer in its first epoch: their gradients are dropped, as DINO's cancel_gradients_last_layer)."""
    set_lr_wd(optimizer, lr, weight_decay)
    if schedule_values:
        method.set_schedule_values(**schedule_values)
    with autocast(device, precision):
        loss, logs = model(views)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        clip_gradients(method.parameters(), clip_grad)
    for p in frozen:
        p.grad = None
    optimizer.step()
    if momentum is not None:
        method.momentum_update(momentum)
    return loss, logs


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
        elif given != before and given != getattr(default, f.name) and f.name not in RESOLVED_FIELDS:
            flag = f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
            raise UserError(f"--resume: {flag} {given} differs from the run's {before}; "
                            "drop the flag to continue the run, or start a new --run-name")
    return merged


def _representation(encoder: Encoder, cfg: TrainConfig, spec: MethodSpec):
    """`images in [0, 1] -> (B, C)`: the image representation the method trains (kNN monitor)."""
    if spec.representation is not None:
        return lambda x: bag_of_patches(encoder, x, cfg.patch_size)
    return encoder.forward_global


def train(cfg: TrainConfig) -> Path:
    """Train one model as `cfg` says; returns the run directory (see `co_ssl_train.checkpoint`).

    Under torchrun every rank calls this; rank 0 writes the run directory.
    """
    ctx = distributed.init_distributed(cfg.device, cfg.dist_timeout)
    try:
        return _train(cfg, ctx)
    except KeyboardInterrupt as e:  # say what is kept, naming a checkpoint only when there is one
        run_dir = run_dir_for(cfg)
        e.args = (f"the last checkpoint in {run_dir} is kept (continue with --resume)"
                  if (run_dir / checkpoint.STATE_FILE).is_file() else f"no checkpoint of {run_dir} was written yet",)
        raise
    finally:
        distributed.shutdown()


def _train(cfg: TrainConfig, ctx: distributed.DistContext) -> Path:
    # ---- setup ---------------------------------------------------------------------------------
    run_dir = run_dir_for(cfg)
    writable_dir(cfg.out, "--out")  # every rank: an output that cannot be written fails now, not after an epoch
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a folder; choose another --run-name")
    resuming = cfg.resume and (run_dir / checkpoint.STATE_FILE).is_file()
    if resuming:
        cfg = _merge_resumed(cfg, checkpoint.read_meta(run_dir)["config"])
    elif (run_dir / checkpoint.META_FILE).exists():
        if cfg.resume:
            raise UserError(f"{run_dir} holds a run without its resume state ({checkpoint.STATE_FILE}), so it cannot "
                            "be continued; its encoder still loads for analysis; train another --run-name")
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --run-name to start another")
    elif cfg.resume and ctx.is_main:
        print(f"--resume: {run_dir} holds no run to continue; starting fresh")
    device = resolve_device(cfg.device, ctx)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    spec = get_method(cfg.method)
    torch.manual_seed(cfg.seed)

    # ---- data ----------------------------------------------------------------------------------
    data_spec = get_spec(cfg.dataset)
    dataset = load_dataset(cfg.dataset, cfg.split or data_spec.train_split, root=cfg.data_root, download=cfg.download,
                           image_size=cfg.image_size)
    cfg = resolve_config(cfg, cfg.image_size or dataset.info.image_size, ctx.world_size)
    if cfg.subset is not None and cfg.subset < len(dataset):
        dataset = dataset.subset(torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.subset])
    if len(dataset) < cfg.batch_size:
        raise UserError(f"{cfg.dataset} {dataset.info.split} has {len(dataset)} images, fewer than "
                        f"--batch-size {cfg.batch_size}; lower the batch size")
    knn_queries = None
    if cfg.knn_every:
        knn_queries = load_dataset(cfg.dataset, data_spec.eval_split, root=cfg.data_root, download=cfg.download,
                                   image_size=cfg.image_size)
    if isinstance(dataset, ImageDataset):
        dataset.images = dataset.images.to(device)  # kept on the device as uint8
    plan = spec.views(cfg)

    # ---- model ---------------------------------------------------------------------------------
    mean, std = dataset_normalization(dataset, cfg.normalization)
    encoder = build_encoder(cfg.arch, arch_options.arch_options(cfg), mean=mean, std=std)
    local = local_settings(cfg, spec.co)
    stage = local_stage(encoder, cfg.local_layer)
    with torch.no_grad():
        h = encoder.eval().forward_maps(torch.zeros(2, 3, cfg.image_size, cfg.image_size), (stage,))[0].shape[-1]
    encoder.train()
    if local is not None and cfg.local_grid > h:
        raise UserError(f"--local-grid {cfg.local_grid} is larger than the {h}x{h} {cfg.local_layer} map of "
                        f"{cfg.arch} at {cfg.image_size} px; use at most {h}")
    method = spec.build(encoder, cfg).to(device)
    if cfg.sync_bn:
        if ctx.backend != "nccl":
            raise UserError("--sync-bn needs torchrun on GPUs (nccl); drop it for CPU or single-process runs")
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    channels_last = use_channels_last(cfg, device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    precision = resolve_precision(cfg.precision, device)
    model: nn.Module = method
    if ctx.world_size > 1:
        model = nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(model) if cfg.compile else model

    # ---- optimizer and schedules -----------------------------------------------------------------
    optimizer = build_optimizer(cfg.optimizer, param_groups(method.online_modules()), cfg.lr, cfg.weight_decay)
    steps_per_epoch = len(dataset) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    lr_schedule = warmup_cosine(cfg.lr * cfg.batch_size / 256, cfg.min_lr, total_steps,
                                warmup_steps=round(cfg.warmup_epochs * steps_per_epoch))
    wd_end = cfg.weight_decay if cfg.weight_decay_end is None else cfg.weight_decay_end
    wd_schedule = cosine(cfg.weight_decay, wd_end, total_steps)
    ema_schedule = ema_momentum(cfg.ema, total_steps, end=cfg.ema_end)
    method_schedules = spec.schedules(cfg, total_steps, steps_per_epoch) if spec.schedules else {}
    stop_step = min(total_steps, cfg.max_steps or total_steps)
    freeze_steps = round(cfg.freeze_last_layer * steps_per_epoch)
    last_layer = tuple(p for name, p in method.named_parameters() if name.endswith("prototypes") and p.requires_grad)

    # ---- resume --------------------------------------------------------------------------------
    # each rank augments its own images with its own stream; rank 0's is the single-process one
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1 + 1_000_003 * ctx.rank)
    step, created, history = 0, None, []
    if resuming:
        if ctx.is_main:
            for leftover in run_dir.glob(".*.tmp"):  # half-written files of a killed run
                leftover.unlink(missing_ok=True)
        state = checkpoint.load_state(run_dir, map_location=device)
        try:
            method.load_state_dict(state["method"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError):
            raise UserError(f"{run_dir / checkpoint.STATE_FILE} does not fit this co-ssl-train's {cfg.method} "
                            "(written by another version); its encoder still loads for analysis, but to train "
                            "start a new --run-name") from None
        streams = state["rng"]["augment"].cpu()
        streams = streams[None] if streams.ndim == 1 else streams
        if streams.shape[0] == ctx.world_size:
            aug_gen.set_state(streams[ctx.rank].clone())  # a fresh tensor: set_state misreads row views
        elif ctx.is_main:
            print(f"resuming with {ctx.world_size} processes instead of {streams.shape[0]}: augmentation streams "
                  "are re-seeded, so the run is no longer bit-identical to an uninterrupted one")
        torch.set_rng_state(state["rng"]["torch"].cpu())
        step, created = int(state["step"]), state.get("created")
        history = list(state["history"]) if "history" in state else _read_log(run_dir)
        if step >= stop_step:
            if ctx.is_main:
                print(f"{run_dir}: already trained to step {step}; nothing to do")
            return run_dir
        if ctx.is_main:
            print(f"resuming {run_dir} at step {step} of {stop_step}")

    def save(epoch_done: int, metrics: dict[str, float]) -> None:
        fingerprints = distributed.check_replicas(method) if ctx.world_size > 1 else None  # every rank
        streams = distributed.all_gather_object(aug_gen.get_state())  # every rank
        if not ctx.is_main:
            return
        state = {"schema_version": checkpoint.SCHEMA_VERSION, "step": step, "created": created or "",
                 "method": method.state_dict(), "optimizer": optimizer.state_dict(), "history": history,
                 "rng": {"augment": torch.stack(streams), "torch": torch.get_rng_state()}}
        meta = {"method": cfg.method, "config": cfg.to_json(), "dataset": dataset.info.to_json(),
                "input_size": cfg.image_size, "epoch": epoch_done, "step": step, "total_steps": total_steps,
                "finished": step >= total_steps, "metrics": metrics, "exported": "online encoder",
                "receptive_field": encoder.receptive_field(),
                "local_branch": {**local.to_json(), "stage": stage} if local is not None else None,
                "representation": (spec.representation(cfg) if spec.representation is not None else
                                   {"kind": "readout", "readout": encoder.readout, "layer": encoder.final_layer}
                                   if getattr(encoder, "family", None) == "vit" else
                                   {"kind": "global-average", "layer": encoder.final_layer}),
                "encoder": encoder.describe(),
                "views": [{"size": v.size, "count": c, "scale": list(v.scale)} for v, c in plan],
                "distributed": {**ctx.to_json(), "replica_fingerprints": fingerprints}}
        if created:
            meta["created"] = created
        checkpoint.save_run(run_dir, method.encoder, meta, state)

    def knn_monitor() -> float:
        bank_idx = seeded_indices(len(dataset), cfg.knn_bank, cfg.seed + 7)
        query_idx = seeded_indices(len(knn_queries), cfg.knn_queries, cfg.seed + 11)
        represent = _representation(method.encoder, cfg, spec)
        method.encoder.eval()
        with autocast(device, precision):
            bank, bank_y = embed(represent, dataset, bank_idx, device, workers=cfg.workers)
            queries, query_y = embed(represent, knn_queries, query_idx, device, workers=cfg.workers)
        method.encoder.train()
        return knn_accuracy(bank, bank_y, queries, query_y, k=cfg.knn_k, temperature=cfg.knn_temperature,
                            num_classes=dataset.info.num_classes)

    # ---- loop ----------------------------------------------------------------------------------
    created = created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    method.train()
    metrics: dict[str, float] = history[-1] if history else {}
    bar = _progress(stop_step, step, cfg.progress and ctx.is_main, run_dir.name)
    while step < stop_step:
        epoch, start = divmod(step, steps_per_epoch)
        order = shard(batch_indices(len(dataset), cfg.batch_size, cfg.seed, epoch), ctx.rank, ctx.world_size)
        sums: dict[str, torch.Tensor] = {}
        t0, seen = time.perf_counter(), 0
        undecodable: list[str] = []
        for images in epoch_batches(dataset, order, start, device, cfg.workers, undecodable):
            views = make_views(images, plan, aug_gen, channels_last)
            loss, logs = training_step(
                step_fn, method, optimizer, views, lr=float(lr_schedule[step]), weight_decay=float(wd_schedule[step]),
                momentum=float(ema_schedule[step]) if spec.momentum else None,
                schedule_values={k: float(v[step]) for k, v in method_schedules.items()}, device=device,
                precision=precision, clip_grad=cfg.clip_grad, frozen=last_layer if step < freeze_steps else ())
            step += 1
            seen += images.shape[0] * ctx.world_size
            for k, v in {"loss": loss.detach(), **logs}.items():
                sums[k] = sums.get(k, 0) + v.float()
            if step % 10 == 0 or step == stop_step:
                current = float(loss.detach())
                if not math.isfinite(current):
                    kept = (f"last good checkpoint kept in {run_dir}" if (run_dir / checkpoint.STATE_FILE).is_file()
                            else "no checkpoint was written yet")
                    raise UserError(f"the loss became {current} at step {step}; lower --lr or use --precision fp32 "
                                    f"({kept})")
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{current:.3f}", lr=f"{lr_schedule[step - 1]:.3g}", img_s=f"{rate:.0f}")
            bar.update(1)
            epoch_end = step % steps_per_epoch == 0
            if epoch_end or step >= stop_step or (cfg.save_every and step % cfg.save_every == 0):
                steps_done = step - (epoch * steps_per_epoch + start)
                metrics = {k: float(distributed.all_reduce_mean(v)) / steps_done for k, v in sums.items()}
                metrics.update(epoch=step / steps_per_epoch, step=step, lr=float(lr_schedule[step - 1]),
                               images_per_s=seen / max(time.perf_counter() - t0, 1e-9))
                if undecodable:  # this rank's files that did not decode, named in log.jsonl and meta.json
                    metrics.update(undecodable_count=len(undecodable), undecodable=undecodable[:50])
                    bar.write(f"note: {len(undecodable)} files did not decode and were left out of their batches: "
                              f"{', '.join(undecodable[:5])}{', ...' if len(undecodable) > 5 else ''}")
                if epoch_end and knn_queries is not None and (step // steps_per_epoch) % cfg.knn_every == 0:
                    metrics[f"knn_top1_k{cfg.knn_k}"] = knn_monitor()  # every rank computes it: no one waits
                    if ctx.is_main:
                        bar.write(f"epoch {step // steps_per_epoch}: kNN top-1 {metrics[f'knn_top1_k{cfg.knn_k}']:.4f}")
                if epoch_end:
                    history.append(metrics)
                    if ctx.is_main:
                        _write_log(run_dir, history)
                save(step // steps_per_epoch, metrics)
            if epoch_end or step >= stop_step:
                break
    bar.close()
    if ctx.is_main:
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
