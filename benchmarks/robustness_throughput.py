"""Throughput of the robustness protocol, measured in one run (issue 5):

(a) corrupted images per second with 1 worker (in-process and a 1-process pool), 2 workers and
    all cores, on the same images and corruptions (pool start and numba JIT excluded);
(b) the 75-cell corruption sweep (15 corruptions x 5 severities, plus the clean cell) through
    `run_analysis` with a warm uint8 cache, over the pure forward time of the model on the same
    images already on the device (and over the same forward from uint8 on the host);
(c) one PGD cell through foolbox over `steps` x (forward + backward) of the same batch;
(d) an estimate of RobustBench's ImageNet protocol (5 000 images, 75 cells, 224 px, ResNet-50) on a
    16-core H100 box, from per-image corruption times measured here at 224 px, the parallel
    efficiency measured in (a), and the ResNet-50 forward rate: measured when this run has a GPU,
    else an assumption given by --h100-forward-rate (said so in the JSON);
(e) scaling over ranks: the warm sweep on 1 rank against 2 ranks on a CPU (every rank `cores // 2`
    threads; target >= 1.7x on 2 cores), 1 against every GPU on a GPU machine
    (`benchmarks/rank_scaling.py`).

Runs on the GPU when there is one (bf16 autocast, channels_last), else on the CPU. Writes
`benchmarks/results/robustness_throughput-<device>[-quick].json` atomically (`--out` elsewhere);
`--only a,e` runs some rows.

    python benchmarks/robustness_throughput.py --quick          # smoke test, a few minutes on 2 cores
    python benchmarks/robustness_throughput.py                  # the full measurement
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # run as a script: the repository root on the path

from benchmarks.timing import make_images, sync, timed  # noqa: E402


# ---- (a) generation ----

def _pool_corrupt(nhwc: np.ndarray, corruption: str, severity: int, seeds: list[int], workers: int) -> None:
    """Corrupt on a pool of `workers` processes (also for 1 worker, unlike `corrupt_images`)."""
    from coanalysis.data.corruption.pool import chunk_size, corrupt_chunk, start_pool

    pool = start_pool(workers)
    size = chunk_size(len(nhwc), nhwc.shape[1], workers)
    futures = [pool.submit(corrupt_chunk, nhwc[i:i + size], corruption, severity, seeds[i:i + size])
               for i in range(0, len(nhwc), size)]
    for future in futures:
        future.result()


def measure_generation(images: torch.Tensor, corruptions: tuple[str, ...], severity: int, all_cores: int) -> dict:
    from coanalysis.results.corruption_names import corruption_seed
    from coanalysis.data.corruption.pool import corrupt_images

    nhwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    rates = {}
    for label, workers in (("in-process", 0), ("pool-1", 1), ("pool-2", 2), (f"pool-{all_cores}", all_cores)):
        def corrupt(c: str, batch: np.ndarray) -> None:
            seeds = [corruption_seed(0, c, severity, i) for i in range(len(batch))]
            if workers:
                _pool_corrupt(batch, c, severity, seeds, workers)
            else:
                corrupt_images(batch, c, severity, seeds, workers=1)

        # warm up: start the pool and let every process compile glass_blur's numba kernel
        # (single-image tasks submitted together reach every worker)
        for c in corruptions:
            corrupt(c, np.repeat(nhwc[:1], 2 * max(workers, 1), axis=0))
        t0 = time.perf_counter()
        for c in corruptions:
            corrupt(c, nhwc)
        rates[label] = len(nhwc) * len(corruptions) / (time.perf_counter() - t0)
    return {"images": len(nhwc), "image_size": int(images.shape[-1]), "corruptions": list(corruptions),
            "severity": severity, "images_per_s": rates,
            "speedup_2_vs_1_pool": rates["pool-2"] / rates["pool-1"],
            "speedup_2_vs_in_process": rates["pool-2"] / rates["in-process"],
            f"speedup_{all_cores}_vs_1_pool": rates[f"pool-{all_cores}"] / rates["pool-1"]}


# ---- shared: a model and a context ----

def build_context(arch: str, width: int | None, size: int, images: torch.Tensor, labels: torch.Tensor,
                  device: torch.device, precision: str, batch_size: int, workers: int, cache: Path):
    from co_ssl_train.data.datasets import DatasetInfo

    from coanalysis.analyses.context import EvalContext
    from coanalysis.data.corruption.settings import CorruptionSettings
    from coanalysis.features.extraction import EvalData
    from coanalysis.models.trainer import ImageDataset, build_encoder
    from coanalysis.models.loading import ModelSource
    from coanalysis.probes.linear import LinearProbe

    kwargs = {"stem": "cifar" if size <= 96 else "imagenet"}
    if width is not None:
        kwargs["width"] = width
    torch.manual_seed(0)
    encoder = build_encoder(arch, kwargs, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), local_layer="layer4")
    encoder.source = ModelSource(path="benchmark", format="random-init", content_hash=f"random-{arch}-{width}-{size}",
                                 name="bench", arch=arch, arch_kwargs=kwargs)
    encoder = encoder.to(device).eval()
    if device.type == "cuda":
        encoder = encoder.to(memory_format=torch.channels_last)
    probe = LinearProbe(encoder.num_features, 10).to(device).eval()
    info = DatasetInfo(name="benchmark-shapes", split="test", num_classes=10, image_size=size, source="procedural")
    data = EvalData.from_dataset(ImageDataset(images, labels, [str(k) for k in range(10)], info))
    ctx = EvalContext(encoder=encoder, probe=probe, data=data, device=device, precision=precision,
                      batch_size=batch_size, workers=0, corruption=CorruptionSettings(workers=workers, cache_dir=cache))
    return ctx


# ---- (b) the sweep ----

def measure_sweep(ctx, device: torch.device, out: Path) -> dict:
    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.corruptions import CorruptionProtocol, cells
    from coanalysis.results.derived.corruptions import parse_key
    from coanalysis.analyses.context import EvalContext
    from coanalysis.results.corruption_names import STANDARD
    from coanalysis.features.extraction import to_input
    from coanalysis.run.pipeline import Session, run_analysis

    protocol = CorruptionProtocol(corruptions=STANDARD)
    session = Session(out=out / "cold", progress=False, device_name=str(device), batch_size=ctx.batch_size)
    t0 = time.perf_counter()
    run_analysis(session, ctx, ANALYSES["corruptions"], protocol)
    sync(device)
    cold = time.perf_counter() - t0

    fresh = EvalContext(**{k: getattr(ctx, k) for k in ("encoder", "probe", "data", "device", "precision",
                                                         "batch_size", "workers", "corruption")})
    session = Session(out=out / "warm", progress=False, device_name=str(device), batch_size=ctx.batch_size)
    t0 = time.perf_counter()
    run_analysis(session, fresh, ANALYSES["corruptions"], protocol)
    sync(device)
    warm = time.perf_counter() - t0

    # the same images: the clean subset and the 75 cells, read from the cache once
    provider = next(iter(fresh.corruption_providers.values()))
    sets = [(ctx.images().images, ctx.images().labels)]
    for key in cells(protocol)[1:]:
        got = provider.get(*parse_key(key))
        sets.append((got.images, got.labels))
    total = sum(len(labels) for _, labels in sets)

    def from_uint8() -> None:
        for images, labels in sets:
            ctx.accuracy_of_images(images, labels)

    on_device = [to_input(images, device) for images, _ in sets] if device.type == "cuda" else None

    def pure() -> None:
        for k, (images, _) in enumerate(sets):
            x = on_device[k] if on_device is not None else images.float().div_(255)
            for start in range(0, len(x), ctx.batch_size):
                ctx.logits(x[start:start + ctx.batch_size])

    t_pure = timed(pure, device, repeats=1)
    t_uint8 = timed(from_uint8, device, repeats=1)
    return {"cells": 75, "images_per_cell": len(sets[1][1]), "images_total": total, "cold_sweep_s": cold,
            "warm_sweep_s": warm, "pure_forward_s": t_pure, "forward_from_uint8_s": t_uint8,
            "ratio_warm_sweep_over_pure_forward": warm / t_pure,
            "ratio_warm_sweep_over_forward_from_uint8": warm / t_uint8,
            "forward_images_per_s": total / t_pure}


# ---- (c) PGD ----

def measure_pgd(ctx, device: torch.device, steps: int) -> dict:
    from coanalysis.analyses.pgd import AttackedModel, PGDProtocol, run_cell
    from coanalysis.features.extraction import to_input
    from coanalysis.probes.linear import ProbedEncoder

    protocol = PGDProtocol(linf_eps=(1 / 255,), l2_eps=(), steps=steps)
    subset = ctx.images()
    x = to_input(subset.images, device)
    y = subset.labels.to(device)
    model = AttackedModel(ProbedEncoder(ctx.encoder, ctx.probe), ctx.precision).eval()

    def forward_backward() -> None:
        xx = x.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xx), y, reduction="sum")
        torch.autograd.grad(loss, xx)

    t_fb = timed(forward_backward, device, repeats=5)
    t_pgd = timed(lambda: run_cell(ctx, protocol, "linf eps=1/255"), device, repeats=3)
    return {"batch": len(y), "steps": steps, "forward_backward_s": t_fb, "pgd_cell_s": t_pgd,
            "ratio_pgd_over_steps_x_forward_backward": t_pgd / (steps * t_fb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default=None, help="default: resnet18 (quick: resnet10 width 16)")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=None, help="images per sweep cell (default 2000; quick 64)")
    parser.add_argument("--gen-images", type=int, default=None, help="images for (a) (default 256; quick 48)")
    parser.add_argument("--pgd-batch", type=int, default=None, help="(c) batch (default 256; quick 64)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--per-image", type=int, default=None, help="(d) images timed per cell (default 4; quick 1)")
    parser.add_argument("--h100-forward-rate", type=float, default=3000.0,
                        help="assumed ResNet-50 bf16 images/s at 224 px on an H100 when this run has no GPU")
    parser.add_argument("--conditions", default=None, help="what else ran on the machine (recorded)")
    parser.add_argument("--only", default="a,b,c,d,e", help="rows to run (default: a,b,c,d,e)")
    parser.add_argument("--ranks", type=int, default=None, help="(e) ranks (default: 2 on CPU, every GPU)")
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/...)")
    args = parser.parse_args()
    rows = set(args.only.split(","))
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

    from coanalysis.results.corruption_names import STANDARD
    from coanalysis.data.corruption.pool import available_cores, shutdown_pools
    from coanalysis.run.environment import describe_device, environment
    from coanalysis.models.trainer import resolve_device, resolve_precision
    from coanalysis.models.trainer import write_json_atomic

    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    quick = args.quick
    arch = args.arch or ("resnet10" if quick else "resnet18")
    width = args.width if args.width is not None else (16 if quick else None)
    n = args.n or (64 if quick else 2000)
    gen_images = args.gen_images or (48 if quick else 256)
    pgd_batch = args.pgd_batch or (64 if quick else 256)
    per_image = args.per_image or (1 if quick else 4)
    steps = 10 if quick and args.steps == 20 else args.steps
    cores = available_cores()
    started = time.perf_counter()
    report: dict = {"benchmark": "robustness_throughput", "quick": quick, "device": describe_device(device),
                    "precision": precision, "torch": torch.__version__, "python": platform.python_version(),
                    "cpu_cores": cores, "torch_threads": torch.get_num_threads(), "environment": environment(device),
                    "conditions": args.conditions or ("shared machine: other jobs were running, so timings (above all "
                                                      "(a)) are distorted; rerun on a quiet machine"),
                    "model": {"arch": arch, "width": width, "image_size": args.image_size}}
    print(f"device {report['device']}, {cores} cores, model {arch} width {width} at {args.image_size} px", flush=True)

    images, labels = make_images(max(n, gen_images, pgd_batch), args.image_size)
    if "a" in rows:
        print("(a) corruption generation ...", flush=True)
        report["a_generation"] = measure_generation(images[:gen_images], STANDARD, 3, cores)
        report["a_generation"]["target_speedup_2_vs_1"] = 1.7
    with tempfile.TemporaryDirectory(prefix="co-ssl-bench-") as tmp:
        tmp = Path(tmp)
        if "b" in rows:
            print("(b) 75-cell sweep: cold, warm, pure forward ...", flush=True)
            ctx = build_context(arch, width, args.image_size, images[:n], labels[:n], device, precision,
                                512 if device.type == "cuda" else 256, cores, tmp / "cache")
            report["b_sweep"] = {**measure_sweep(ctx, device, tmp), "target_ratio": 1.2}
        if "c" in rows:
            print("(c) PGD ...", flush=True)
            pgd_ctx = build_context(arch, width, args.image_size, images[:pgd_batch], labels[:pgd_batch], device,
                                    precision, pgd_batch, cores, tmp / "cache")
            report["c_pgd"] = {**measure_pgd(pgd_ctx, device, steps), "target_ratio": 1.3}
        shutdown_pools()
        if "e" in rows:
            from benchmarks.rank_scaling import measure_scaling

            ranks = args.ranks or (max(torch.cuda.device_count(), 1) if device.type == "cuda" else 2)
            print(f"(e) warm sweep on 1 rank vs {ranks} ranks ...", flush=True)
            report["e_scaling"] = measure_scaling(ranks, device.type, tmp / "scaling", width=width or 16,
                                                  size=args.image_size,
                                                  **({"corruptions": "standard", "severities": "3"} if quick else {}))
    if "d" in rows:
        print("(d) ImageNet estimate ...", flush=True)
        efficiency = min(1.0, report["a_generation"]["speedup_2_vs_1_pool"] / 2) if "a" in rows else 1.0
        from benchmarks.imagenet_estimate import estimate_imagenet

        report["d_imagenet_estimate"] = estimate_imagenet(per_image, efficiency, device, args.h100_forward_rate)
    report["wall_time_s"] = time.perf_counter() - started
    tag = "cuda" if device.type == "cuda" else "cpu"
    default = ROOT / "results" / f"robustness_throughput-{tag}{'-quick' if quick else ''}.json"
    path = Path(args.out) if args.out else default
    write_json_atomic(path, report)
    _print_rows(report)
    print(f"written to {path}")


def _print_rows(report: dict) -> None:
    if "a_generation" in report:
        a = report["a_generation"]
        print(f"(a) {a['images_per_s']} img/s; 2 vs 1 workers {a['speedup_2_vs_1_pool']:.2f}x (target >= 1.7)")
    if "b_sweep" in report:
        b = report["b_sweep"]
        print(f"(b) warm sweep {b['warm_sweep_s']:.1f} s / pure forward {b['pure_forward_s']:.1f} s = "
              f"{b['ratio_warm_sweep_over_pure_forward']:.2f} (target <= 1.2)")
    if "c_pgd" in report:
        c = report["c_pgd"]
        print(f"(c) PGD {c['pgd_cell_s']:.2f} s / ({c['steps']} x {c['forward_backward_s']:.3f} s) = "
              f"{c['ratio_pgd_over_steps_x_forward_backward']:.2f} (target <= 1.3)")
    if "d_imagenet_estimate" in report:
        d = report["d_imagenet_estimate"]
        print(f"(d) ESTIMATE ImageNet 75 cells on 16 cores + H100: {d['total_s_overlapped'] / 60:.1f} min overlapped, "
              f"{d['total_s_serial'] / 60:.1f} min serial (target 15 min)")
    if "e_scaling" in report:
        e = report["e_scaling"]
        print(f"(e) warm sweep {e['runs']['1']['sweep_s']:.1f} s on 1 rank, "
              f"{e['runs'][str(e['ranks'])]['sweep_s']:.1f} s on {e['ranks']}: {e['speedup']:.2f}x "
              f"(target >= {e['target_speedup']})")


if __name__ == "__main__":
    main()
