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

import datetime as dt
import math
import time
from pathlib import Path

import torch
from torch import nn

from co_ssl_train import arch_options, checkpoint, distributed
from co_ssl_train.batches import (batch_indices, dataset_normalization, epoch_batches, make_views, shard,
                                  use_channels_last)
from co_ssl_train.config import TrainConfig
from co_ssl_train.data import ImageDataset, get_spec, load_dataset
from co_ssl_train.device import autocast, resolve_device, resolve_precision
from co_ssl_train.errors import UserError
from co_ssl_train.knn import embed, knn_accuracy, seeded_indices
from co_ssl_train.methods import MethodSpec, build_method, get_method
from co_ssl_train.methods.bagssl import bag_of_patches
from co_ssl_train.optim import build_optimizer, clip_gradients, param_groups, set_lr_wd
from co_ssl_train.options import writable_dir
from co_ssl_train.schedules import cosine, ema_momentum, warmup_cosine

from co_ssl_train.methods.co import local_settings, local_stage
from co_ssl_train.models import Encoder, build_encoder


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
        run_dir = _train(cfg, ctx)
        # every rank waits for rank 0's last writes before any tears its gloo / nccl group down: a rank
        # that destroyed its group and exited while another was still at work aborted now and then
        distributed.barrier()
        return run_dir
    except KeyboardInterrupt as e:  # say what is kept, naming a checkpoint only when there is one
        run_dir = Path(cfg.out) / cfg.run_dir_name()
        e.args = (f"the last checkpoint in {run_dir} is kept (continue with --resume)"
                  if (run_dir / checkpoint.STATE_FILE).is_file() else f"no checkpoint of {run_dir} was written yet",)
        raise
    finally:
        distributed.shutdown()


def _train(cfg: TrainConfig, ctx: distributed.DistContext) -> Path:
    # ---- setup ---------------------------------------------------------------------------------
    cfg.validate(world_size=ctx.world_size)  # the image-size checks follow once the data is open
    run_dir = Path(cfg.out) / cfg.run_dir_name()
    writable_dir(cfg.out, "--out")  # every rank: an output that cannot be written fails now, not after an epoch
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a folder; choose another --run-name")
    resuming = cfg.resume and (run_dir / checkpoint.STATE_FILE).is_file()
    if resuming:
        stored = checkpoint.read_meta(run_dir).get("config")
        if stored is None:
            raise UserError(f"{run_dir / checkpoint.META_FILE} records no config, so the run cannot be resumed; "
                            "start a new --run-name")
        cfg = cfg.merged_for_resume(stored)
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
    cfg = cfg.resolved(cfg.image_size or dataset.info.image_size, ctx.world_size)
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
    grid = cfg.local_grid or h
    if local is not None and cfg.local_positions > grid * grid:
        raise UserError(f"--local-positions {cfg.local_positions} is more than the {grid}x{grid} local grid's "
                        f"{grid * grid} positions; use at most {grid * grid} (0 = every position)")
    method = build_method(spec, encoder, cfg).to(device)  # --drop-path: in the trained encoder only
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
    optimizer = build_optimizer(cfg.optimizer, param_groups(method.online_modules(), cfg.exclude_bias_norm), cfg.lr,
                                cfg.weight_decay, lars_eta=cfg.lars_eta, lars_clip=cfg.lars_clip)
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
    last_layer = tuple(p for name, p in method.named_parameters()  # DINO's last_layer: its v and (trained) g
                       if name.endswith(("prototypes", "prototypes_g")) and p.requires_grad)

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
        if "cuda" in state["rng"] and device.type == "cuda":  # --drop-path draws from the device's stream
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
        step, created = int(state["step"]), state.get("created")
        history = list(state["history"]) if "history" in state else checkpoint.read_log(run_dir)
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
                 "rng": {"augment": torch.stack(streams), "torch": torch.get_rng_state(),
                         **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}}
        meta = checkpoint.training_meta(
            cfg, spec, dataset_info=dataset.info.to_json(), encoder=encoder, plan=plan, local=local, stage=stage,
            epoch=epoch_done, step=step, total_steps=total_steps, metrics=metrics,
            distributed={**ctx.to_json(), "replica_fingerprints": fingerprints}, created=created)
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
                        checkpoint.write_log(run_dir, history)
                save(step // steps_per_epoch, metrics)
            if epoch_end or step >= stop_step:
                break
    bar.close()
    if ctx.is_main:
        print(f"{run_dir}: step {step}/{total_steps}, loss {metrics.get('loss', float('nan')):.4f}")
    return run_dir

