"""Training throughput: the full training step against the bare compute, and CO-BYOL against BYOL.

For each method, in one run on one device:
- full step: exactly the trainer's hot path (`co_ssl_train.train`): uint8 images kept on the
  device, batch indexing (`epoch_batches`), batched per-image augmentation of every view
  (`make_views`), forward, backward, optimizer step and EMA update (`training_step`), the per-step
  loss bookkeeping and the every-10-steps loss check of the loop;
- bare compute: the same method module, optimizer and step function on fixed, device-resident
  random float views of the same shapes (no data, no augmentation, no bookkeeping).
Both report images/s (images of the batch, not views); `full_over_bare` is their ratio and
`co_over_plain` the full-step throughput of each CO-variant over its base method's. Blocks of
steps alternate between the two modes (`--repeats`), and the median block is kept.

The issue's GPU targets (recorded in the JSON): full/bare >= 0.85, CO-BYOL/BYOL >= 0.9, and a
50 000-image epoch of CO-BYOL with ResNet-18 at 32 px in <= 8 s on one H100 (`epoch_50k_s`).

`--vit` adds the Vision Transformer rows (`vit_rows` in the JSON): DINO and CO-DINO exactly as the ViT
recipes train them (`imagenet100` on ViT-S/16 at 224 px, `cifar10` on ViT-tiny/4 at 32 px: DINO's ViT
head, 2 global + 8 local crops, stochastic depth, AdamW with clipping, the CO-variant's local grid
and positions per step); targets full/bare >= 0.85 and CO-DINO/DINO >= 0.9 on GPU. Their blocks interleave
the two methods and modes in every repeat (see `vit_measure`), so the ratios hold under a drifting load.

    python benchmarks/train_throughput.py                 # ResNet-18, 32 px, batch 512 (GPU sizes)
    python benchmarks/train_throughput.py --quick         # a small smoke run
    python benchmarks/train_throughput.py --arch resnet10 --width 16 --batch-size 256 \\
        --proj-hidden 512 --proj-dim 128 --threads 1      # the CPU demo's network
    python benchmarks/train_throughput.py --vit --vit-batch-size 128   # + ViT-S/16 224 px, ViT-tiny/4 32 px
    python benchmarks/train_throughput.py --vit-only --vit-batch-size 4,32 --vit-steps 3 --vit-warmup 1 \
        --repeats 4 --vit-dataset-size 64 --threads 2 --out benchmarks/results/train_throughput-vit-cpu.json
                                                          # the ViT rows on a 2-core CPU

Writes `benchmarks/results/train_throughput-<device>.json` (atomically) unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from co_ssl_train.arch_options import arch_options  # noqa: E402
from co_ssl_train.atomic import write_json_atomic  # noqa: E402
from co_ssl_train.config import TrainConfig  # noqa: E402
from co_ssl_train.data import DatasetInfo, ImageDataset  # noqa: E402
from co_ssl_train.methods import METHODS, build_method  # noqa: E402
from co_ssl_train.models import build_encoder  # noqa: E402
from co_ssl_train.optim import build_optimizer, param_groups  # noqa: E402
from co_ssl_train.schedules import ema_momentum, warmup_cosine  # noqa: E402
from co_ssl_train.device import resolve_device  # noqa: E402
from co_ssl_train.batches import batch_indices, epoch_batches, make_views, use_channels_last  # noqa: E402
from co_ssl_train.train import training_step  # noqa: E402
from co_ssl_train.recipes import recipe_config  # noqa: E402

TARGETS = {"full_over_bare_min": 0.85, "co_byol_over_byol_min": 0.9,
           "epoch_50k_s_max_h100_resnet18_32px_co_byol": 8.0, "vit_co_dino_over_dino_min": 0.9}
# the ViT rows: (label, arch, image size, patch size)
# label, arch, image size, patch size, the ViT recipe whose settings the row times
VIT_ROWS = (("vit_small_16_224px", "vit_small", 224, 16, "imagenet100"),
            ("vit_tiny_4_32px", "vit_tiny", 32, 4, "cifar10"))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} (CPU, {torch.get_num_threads()} torch threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(cfg: TrainConfig, device: torch.device):
    """The method, its optimizer and the (possibly compiled) step function, built as `train` does."""
    spec = METHODS[cfg.method]
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.arch, arch_options(cfg))
    method = build_method(spec, encoder, cfg).to(device)
    if use_channels_last(cfg, device):
        method = method.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, param_groups(method.online_modules()), cfg.lr, cfg.weight_decay)
    model = torch.compile(method) if cfg.compile else method
    return spec, method, optimizer, model


class Runner:
    """One method built as `train` builds it, on random uint8 images kept on the device: `run(n, full)`
    times n steps, full (the trainer's hot path) or bare (fixed device-resident float views), and
    returns images/s. Its schedules span `total` steps."""

    def __init__(self, cfg: TrainConfig, device: torch.device, precision: str, total: int, dataset_size: int):
        self.cfg, self.device, self.precision = cfg, device, precision
        self.spec, self.method, self.optimizer, self.model = build(cfg, device)
        self.method.train()
        self.cl = use_channels_last(cfg, device)
        self.plan = self.spec.views(cfg)
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (dataset_size, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                               generator=g)
        info = DatasetInfo(name="random", split="train", num_classes=10, image_size=cfg.image_size, source="benchmark")
        self.dataset = ImageDataset(images.to(device), torch.zeros(dataset_size, dtype=torch.long),
                                    [str(i) for i in range(10)], info)
        self.dataset_size = dataset_size
        self.lr = warmup_cosine(cfg.lr * cfg.batch_size / 256, 0.0, total, warmup_steps=0)
        self.ema = ema_momentum(cfg.ema, total)
        self.schedules = (self.spec.schedules(cfg, total, max(1, dataset_size // cfg.batch_size))
                          if self.spec.schedules else {})
        self.aug = torch.Generator().manual_seed(1)
        fixed = [v.to(device) for v in make_views(self.dataset.images[:cfg.batch_size].cpu(), self.plan, self.aug,
                                                  self.cl)]
        self.fixed = [torch.rand_like(v).contiguous(memory_format=torch.channels_last) if self.cl
                      else torch.rand_like(v) for v in fixed]
        self.step, self.epoch, self.batches = 0, 0, iter(())

    def next_images(self) -> torch.Tensor:
        while True:
            try:
                return next(self.batches)
            except StopIteration:
                order = batch_indices(self.dataset_size, self.cfg.batch_size, self.cfg.seed, self.epoch)
                self.epoch += 1
                self.batches = epoch_batches(self.dataset, order, 0, self.device, 0)

    def run(self, n: int, full: bool) -> float:
        cfg, sums = self.cfg, {}
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(n):
            s = self.step
            views = make_views(self.next_images(), self.plan, self.aug, self.cl) if full else self.fixed
            loss, logs = training_step(self.model, self.method, self.optimizer, views, lr=float(self.lr[s]),
                                       weight_decay=cfg.weight_decay,
                                       momentum=float(self.ema[s]) if self.spec.momentum else None,
                                       schedule_values={k: float(v[s]) for k, v in self.schedules.items()},
                                       device=self.device, precision=self.precision, clip_grad=cfg.clip_grad)
            self.step += 1
            if full:  # the loop's bookkeeping
                for k, v in {"loss": loss.detach(), **logs}.items():
                    sums[k] = sums.get(k, 0) + v.float()
                if self.step % 10 == 0:
                    float(loss.detach())
        sync(self.device)
        return n * cfg.batch_size / (time.perf_counter() - t0)

    def block(self, steps: int, warmup: int, full: bool) -> float:
        """`warmup` untimed steps, then `steps` timed ones: images/s."""
        self.run(warmup, full)
        return self.run(steps, full)

    def describe(self) -> dict:
        return {"views": [{"size": v.size, "count": c} for v, c in self.plan], "channels_last": self.cl}


def measure(cfg: TrainConfig, device: torch.device, precision: str, steps: int, warmup: int, repeats: int,
            dataset_size: int) -> dict:
    """Full and bare blocks alternating `repeats` times; the median block of each mode."""
    runner = Runner(cfg, device, precision, (warmup + steps) * repeats * 2 + warmup, dataset_size)
    runner.run(warmup, True)  # compile / allocate once
    full, bare = [], []
    for _ in range(repeats):
        full.append(runner.block(steps, warmup, True))
        bare.append(runner.block(steps, warmup, False))
    full_s, bare_s = statistics.median(full), statistics.median(bare)
    return {"full_images_per_s": round(full_s, 2), "bare_images_per_s": round(bare_s, 2),
            "full_over_bare": round(full_s / bare_s, 4), "epoch_50k_s": round(50_000 / full_s, 2),
            "full_blocks": [round(v, 2) for v in full], "bare_blocks": [round(v, 2) for v in bare],
            **runner.describe()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="byol,co-byol", help="comma-separated METHODS names (default: byol,co-byol)")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--proj-hidden", type=int, default=4096)
    p.add_argument("--proj-dim", type=int, default=256)
    p.add_argument("--steps", type=int, default=40, help="timed steps per block")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before each block")
    p.add_argument("--repeats", type=int, default=3, help="alternating full/bare blocks; the median is kept")
    p.add_argument("--dataset-size", type=int, default=50_000, help="random uint8 images kept on the device")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--compile", action="store_true", help="torch.compile the method, as --compile in training")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="a small smoke run (resnet10 width 8, batch 64, few steps)")
    p.add_argument("--vit", action="store_true",
                   help="also the ViT rows: dino, co-dino on ViT-S/16 224 px, ViT-tiny/4 32 px")
    p.add_argument("--vit-only", action="store_true", help="only the ViT rows")
    p.add_argument("--vit-rows", default=",".join(r[0] for r in VIT_ROWS),
                   help="ViT rows to run (comma-separated labels)")
    p.add_argument("--vit-batch-size", default="128",
                   help="batch of the ViT rows: one value, or one per --vit-rows row (e.g. 4,64 on a CPU)")
    p.add_argument("--vit-dataset-size", type=int, default=2048,
                   help="random images of the ViT rows (224 px ones are big)")
    p.add_argument("--vit-steps", type=int, default=None, help="timed steps per ViT block (default: --steps)")
    p.add_argument("--vit-warmup", type=int, default=None, help="untimed steps before each ViT block "
                   "(default: --warmup)")
    p.add_argument("--vit-every-token", action="store_true",
                   help="CO-DINO aligns every patch token at every step (default: the recipes' --local-grid 7 at "
                        "224 px, 4 at 32, and their --local-positions 24, 8)")
    p.add_argument("--vit-flops", action="store_true",
                   help="only count the FLOPs of one bare step of each ViT row (torch.utils.flop_counter), for "
                        "CO-DINO at the recipe, with every token and at every position of --local-grid 2, 4 and 7, "
                        "with and without the recipe's local crops: what a compute-bound GPU gives")
    p.add_argument("--conditions", default="", help="what else ran on the machine (recorded in the JSON)")
    p.add_argument("--out", default=None,
                   help="result file (default: benchmarks/results/train_throughput-<device>.json)")
    args = p.parse_args(argv)
    args.vit_only = args.vit_only or args.vit_flops
    if args.quick:
        args.arch, args.width, args.batch_size, args.proj_hidden, args.proj_dim = "resnet10", 8, 64, 64, 32
        args.steps, args.warmup, args.repeats, args.dataset_size = 4, 1, 2, 512
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")

    results = {}
    for m in ([] if args.vit_only else methods):
        cfg = TrainConfig(method=m, dataset="benchmark", arch=args.arch, width=args.width,
                          batch_size=args.batch_size, proj_hidden=args.proj_hidden, proj_dim=args.proj_dim,
                          channels_last=args.channels_last, compile=args.compile,
                          dino_prototypes=4096).resolved(args.image_size)
        results[m] = measure(cfg, device, precision, args.steps, args.warmup, args.repeats, args.dataset_size)
        r = results[m]
        print(f"{m:10s} full {r['full_images_per_s']:9.1f} img/s   bare {r['bare_images_per_s']:9.1f} img/s   "
              f"full/bare {r['full_over_bare']:.3f}   50k-image epoch {r['epoch_50k_s']:.1f} s", flush=True)
    ratios = {f"{m}_over_{m[3:]}": round(results[m]["full_images_per_s"] / results[m[3:]]["full_images_per_s"], 4)
              for m in results if m.startswith("co-") and m[3:] in results}
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    vit_rows = (vit_flops(args, device, precision) if args.vit_flops else
                vit_measure(args, device, precision) if args.vit or args.vit_only else None)
    name = device_name(device)
    report = {
        "benchmark": "train_throughput", "device": name, "device_type": device.type,
        "torch_version": torch.__version__, "precision": precision, "channels_last": args.channels_last,
        "compile": args.compile, "torch_threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
        "gpu_targets": ("measured on this GPU" if device.type == "cuda" else
                        "not measured: the targets are for a GPU and this ran on the CPU (no GPU lent)"),
        "sizes": None if args.vit_only else {
            "arch": args.arch, "width": args.width, "image_size": args.image_size, "batch_size": args.batch_size,
            "proj_hidden": args.proj_hidden, "proj_dim": args.proj_dim, "dataset_size": args.dataset_size},
        "n": None if args.vit_only else {
            "timed_steps_per_block": args.steps, "warmup_steps": args.warmup, "blocks_per_mode": args.repeats,
            "statistic": "median over blocks"},
        "methods": results, "co_over_plain": ratios, "targets": TARGETS,
        **({"vit_rows": vit_rows} if vit_rows is not None else {}),
        "conditions": args.conditions or "not stated",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60]
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"train_throughput-{slug}.json"
    write_json_atomic(out, report)
    print(f"wrote {out}")
    return report


def _vit_cfg(method: str, recipe: str, arch: str, size: int, patch: int, batch: int, compile: bool = False,
             local_grid: int | None = None, local_positions: int | None = None) -> TrainConfig:
    """A ViT row's config: exactly what `co-ssl-train --recipe RECIPE --method METHOD --arch ARCH` trains
    (DINO's ViT head, 2 global + 8 local crops, stochastic depth 0.1, AdamW with clipping, the
    CO-variant's local grid and positions per step), on random images at the batch asked for;
    `local_grid` (0: every token) and `local_positions` (0: all) replace the recipe's."""
    changes = {k: v for k, v in (("local_grid", local_grid), ("local_positions", local_positions)) if v is not None}
    cfg = recipe_config(recipe, method, arch, dataset="benchmark", batch_size=batch, compile=compile,
                        **changes).resolved(size)
    if cfg.vit_patch_size != patch:
        raise SystemExit(f"recipe {recipe} uses {cfg.vit_patch_size} px patches, the row {patch} px")
    return cfg


def vit_flops(args, device: torch.device, precision: str) -> dict:
    """FLOPs per image of one bare step (batch 2) of DINO and of CO-DINO at the recipe's local grid, with
    every patch token and at other n x n grids, each with the recipe's multi-crop and also without it
    (two views only); DINO's over CO-DINO's is the throughput ratio of a compute-bound device."""
    from torch.utils.flop_counter import FlopCounterMode

    rows = {}
    for label, arch, size, patch, recipe in VIT_ROWS:
        if label not in args.vit_rows.split(","):
            continue
        recipe_cfg = _vit_cfg("co-dino", recipe, arch, size, patch, 2)
        grid, positions = recipe_cfg.local_grid, recipe_cfg.local_positions
        row = {"arch": arch, "image_size": size, "patch_size": patch, "tokens": (size // patch) ** 2,
               "recipe": recipe, "recipe_local_grid": grid, "recipe_local_positions": positions}
        at_recipe = f"co-dino recipe (grid {grid}, {positions} positions)"
        variants = [("dino", "dino", None, None), (at_recipe, "co-dino", None, None),
                    ("co-dino every token", "co-dino", 0, 0)]
        variants += [(f"co-dino grid {n}", "co-dino", n, 0) for n in (7, 4, 2) if n < size // patch]
        for views, local_crops in (("recipe_views", None), ("two_views", 0)):
            counts = {}
            for name, method, n, m in variants:
                cfg = _vit_cfg(method, recipe, arch, size, patch, 2, local_grid=n, local_positions=m)
                cfg = cfg if local_crops is None else dataclasses.replace(cfg, local_crops=local_crops)
                runner = Runner(cfg, device, precision, 4, 4)
                with FlopCounterMode(display=False) as counter:
                    runner.run(1, False)
                counts[name] = counter.get_total_flops() / 2
            row[views] = {"views": runner.describe()["views"],
                          "gflop_per_image": {k: round(v / 1e9, 3) for k, v in counts.items()},
                          "dino_over": {k: round(counts["dino"] / v, 4) for k, v in counts.items() if k != "dino"},
                          "dino_over_at_recipe": round(counts["dino"] / counts[at_recipe], 4)}
            print(label, views, row[views]["gflop_per_image"], "DINO FLOPs / CO-DINO FLOPs:", row[views]["dino_over"],
                  flush=True)
        rows[label] = row
    return rows


def vit_measure(args, device: torch.device, precision: str) -> dict:
    """DINO and CO-DINO on each of `VIT_ROWS`, with the ViT recipes' head, local grid, stochastic depth and optimizer.

    The four blocks of a row (DINO full, DINO bare, CO-DINO full, CO-DINO bare) are interleaved in each
    repeat, the methods' order flipped every other repeat, so a drift of the machine's load reaches
    every mode alike; each repeat gives paired ratios (full/bare, CO-DINO/DINO) and their medians are
    reported beside the median rates."""
    labels = [r for r in args.vit_rows.split(",") if r]
    batches = [int(b) for b in str(args.vit_batch_size).split(",")]
    if len(batches) not in (1, len(labels)):
        raise SystemExit(f"--vit-batch-size: give one value or one per row ({len(labels)}), got {args.vit_batch_size}")
    steps = args.vit_steps or args.steps
    warmup = args.warmup if args.vit_warmup is None else args.vit_warmup
    rows = {}
    for label, arch, size, patch, recipe in VIT_ROWS:
        if label not in labels:
            continue
        batch = batches[0] if len(batches) == 1 else batches[labels.index(label)]
        runners = {}
        for m in ("dino", "co-dino"):
            every = 0 if args.vit_every_token else None
            runners[m] = Runner(_vit_cfg(m, recipe, arch, size, patch, batch, args.compile, local_grid=every,
                                         local_positions=every), device, precision,
                                (warmup + steps) * args.repeats * 2 + warmup, args.vit_dataset_size)
            runners[m].run(warmup, True)  # compile / allocate once
        blocks: dict[str, dict[str, list[float]]] = {m: {"full": [], "bare": []} for m in runners}
        for r in range(args.repeats):
            for m in (("dino", "co-dino") if r % 2 == 0 else ("co-dino", "dino")):
                for mode in ("full", "bare"):
                    blocks[m][mode].append(runners[m].block(steps, warmup, mode == "full"))
        row = {}
        for m, b in blocks.items():
            paired = [f / x for f, x in zip(b["full"], b["bare"])]
            row[m] = {"full_images_per_s": round(statistics.median(b["full"]), 3),
                      "bare_images_per_s": round(statistics.median(b["bare"]), 3),
                      "full_over_bare": round(statistics.median(paired), 4),
                      "full_over_bare_repeats": [round(v, 4) for v in paired],
                      "full_blocks": [round(v, 3) for v in b["full"]], "bare_blocks": [round(v, 3) for v in b["bare"]],
                      **runners[m].describe()}
            print(f"{label} {m:8s} full {row[m]['full_images_per_s']:8.2f} img/s   bare "
                  f"{row[m]['bare_images_per_s']:8.2f} img/s   full/bare {row[m]['full_over_bare']:.3f} "
                  f"(repeats {row[m]['full_over_bare_repeats']})", flush=True)
        co_paired = [c / d for c, d in zip(blocks["co-dino"]["full"], blocks["dino"]["full"])]
        ratio = round(statistics.median(co_paired), 4)
        print(f"{label} co-dino/dino: {ratio:.3f} (repeats {[round(v, 3) for v in co_paired]})", flush=True)
        rows[label] = {"arch": arch, "image_size": size, "patch_size": patch, "tokens": (size // patch) ** 2,
                       "batch_size": batch, "timed_steps_per_block": steps, "warmup_steps_per_block": warmup,
                       "repeats": args.repeats, "drop_path": runners["co-dino"].cfg.drop_path, "methods": row,
                       "co_dino_over_dino": ratio,
                       "recipe": recipe, "co_dino_local_grid": runners["co-dino"].cfg.local_grid,
                       "co_dino_local_positions": runners["co-dino"].cfg.local_positions,
                       "co_dino_over_dino_repeats": [round(v, 4) for v in co_paired],
                       "statistic": "median over repeats of the paired ratios; rates: median blocks"}
    return rows


if __name__ == "__main__":
    main()
