"""Throughput of the ERF and redundancy analyses against the passes they cannot avoid.

Two ratios, measured in one run (issue 6):
- ERF: the 4 default coordinates over N images (256 at 224 px on ResNet-50 in the full run) through
  the ERF analysis (`coanalysis.analyses.erf.run_cell`, plain gradient: captum, sizes, stored maps),
  against 4 bare batched forward+backward passes over the same images computing the same gradient
  with `torch.autograd.grad`. Target: at most 1.2x.
- Redundancy: the statistics of the redundancy analysis (`pairs` and `similarity` cells: P pairs,
  bootstrap CIs, within-image similarities) on already extracted local maps, against extracting
  those maps for N images. Target: at most +10% (ratio <= 0.10), for N = 10 000 and P = 100 000.

Runs on the GPU when there is one (bf16 autocast, channels_last), else on the CPU. `--quick` uses
small sizes for a smoke run on a CPU; the JSON says which sizes were used and under which
conditions. The result is written atomically to `benchmarks/results/analysis_throughput-<device>.json`.

    python benchmarks/analysis_throughput.py            # full sizes (a GPU, or a long CPU run)
    python benchmarks/analysis_throughput.py --quick    # small sizes, a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from coanalysis.analyses import erf, redundancy
from coanalysis.analyses.context import EvalContext
from coanalysis.run.environment import describe_device, environment
from coanalysis.features.extraction import EvalData, to_input
from coanalysis.models.trainer import autocast, resolve_precision
from coanalysis.models.trainer import DatasetInfo, ImageDataset, build_encoder, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _random_data(n: int, size: int, seed: int = 0) -> EvalData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    info = DatasetInfo(name="random", split="test", num_classes=10, image_size=size, source="benchmark")
    return EvalData.from_dataset(ImageDataset(images, torch.arange(n) % 10, [str(k) for k in range(10)], info))


def _context(encoder, data: EvalData, device: torch.device, precision: str, batch_size: int) -> EvalContext:
    return EvalContext(encoder=encoder, probe=None, data=data, device=device, precision=precision,
                       batch_size=batch_size)


def bare_passes(encoder, data: EvalData, coords, device: torch.device, precision: str, batch_size: int) -> float:
    """Seconds for one batched forward+backward per coordinate and batch, gradient w.r.t. the input."""
    with torch.no_grad():
        h, w = encoder.forward_local(to_input(data.dataset.images[:1], device)).shape[-2:]
    _sync(device)
    t0 = time.perf_counter()
    for u, v in coords:
        y, x = erf.map_index(u, h), erf.map_index(v, w)
        for images, _, _ in data.batches(batch_size):
            inp = to_input(images, device).requires_grad_(True)
            with autocast(device, precision):
                local = encoder.forward_local(inp)
            score = local[:, :, y, x].float().relu().sum()
            (grad,) = torch.autograd.grad(score, inp)
            grad.abs().sum(1).cpu()
    _sync(device)
    return time.perf_counter() - t0


def erf_analysis(encoder, data: EvalData, device: torch.device, precision: str, batch_size: int) -> float:
    """Seconds for the ERF analysis cells of the 4 default coordinates (plain gradient)."""
    protocol = erf.ERFProtocol(images=(erf.EVAL,), n_images=len(data), image_size=data.info.image_size)
    ctx = _context(encoder, data, device, precision, batch_size)
    erf.erf_images(ctx, protocol)  # the images are decoded once per run, not per cell
    _sync(device)
    t0 = time.perf_counter()
    for key in erf.cells(protocol):
        erf.run_cell(ctx, protocol, key)
    _sync(device)
    return time.perf_counter() - t0


def redundancy_times(encoder, data: EvalData, pairs: int, device: torch.device, precision: str,
                     batch_size: int) -> tuple[float, float]:
    """(seconds to extract the local maps of `data`, seconds for the pairs + similarity statistics)."""
    ctx = _context(encoder, data, device, precision, batch_size)
    protocol = redundancy.RedundancyProtocol(n_images=len(data), n_pairs=pairs)
    _sync(device)
    t0 = time.perf_counter()
    ctx.local_maps(len(data))
    _sync(device)
    extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    for key in ("pairs", "similarity"):
        redundancy.run_cell(ctx, protocol, key)
    _sync(device)
    return extract, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes for a CPU smoke run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--erf-arch", default="resnet50")
    parser.add_argument("--erf-size", type=int, help="ERF input size (default 224; --quick 96)")
    parser.add_argument("--erf-images", type=int, help="ERF images (default 256; --quick 16)")
    parser.add_argument("--erf-batch", type=int, help="ERF batch size (default 64; --quick 8)")
    parser.add_argument("--red-arch", default="resnet18", help="redundancy encoder (CIFAR stem)")
    parser.add_argument("--red-size", type=int, default=32, help="redundancy input size (default 32)")
    parser.add_argument("--red-images", type=int, help="redundancy N (default 10000; --quick 2000)")
    parser.add_argument("--red-pairs", type=int, help="redundancy P (default 100000; --quick 20000)")
    parser.add_argument("--red-batch", type=int, default=256)
    parser.add_argument("--conditions", default="", help="free text saved with the result (machine load, ...)")
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/...)")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    precision = resolve_precision("auto", device)
    q = args.quick
    erf_size = args.erf_size or (96 if q else 224)
    erf_n = args.erf_images or (16 if q else 256)
    erf_batch = args.erf_batch or (8 if q else 64)
    red_n = args.red_images or (2000 if q else 10000)
    red_pairs = args.red_pairs or (20000 if q else 100000)
    torch.manual_seed(0)

    encoder = build_encoder(args.erf_arch, {"stem": "imagenet"}).to(device).eval()
    if device.type == "cuda":
        encoder = encoder.to(memory_format=torch.channels_last)
    data = _random_data(erf_n, erf_size)
    warm = _random_data(min(erf_batch, erf_n), erf_size, seed=1)
    bare_passes(encoder, warm, erf.DEFAULT_COORDS[:1], device, precision, erf_batch)  # warm-up
    erf_analysis(encoder, warm, device, precision, erf_batch)
    t_bare = bare_passes(encoder, data, erf.DEFAULT_COORDS, device, precision, erf_batch)
    t_erf = erf_analysis(encoder, data, device, precision, erf_batch)

    red_encoder = build_encoder(args.red_arch, {"stem": "cifar"}).to(device).eval()
    red_data = _random_data(red_n, args.red_size, seed=2)
    redundancy_times(red_encoder, _random_data(64, args.red_size, seed=3), 1000, device, precision, args.red_batch)
    t_extract, t_stats = redundancy_times(red_encoder, red_data, red_pairs, device, precision, args.red_batch)

    result = {
        "benchmark": "analysis_throughput", "device": describe_device(device), "device_type": device.type,
        "precision": precision, "torch": torch.__version__, "python": platform.python_version(),
        "environment": environment(device), "quick": q,
        "conditions": args.conditions or ("quick sizes; shared 2-core CPU with other jobs running, timings are "
                                          "distorted" if q else ""),
        "erf": {"arch": args.erf_arch, "input_size": erf_size, "n_images": erf_n, "batch_size": erf_batch,
                "coords": [list(c) for c in erf.DEFAULT_COORDS], "method": "gradient",
                "bare_forward_backward_s": round(t_bare, 3), "analysis_s": round(t_erf, 3),
                "ratio": round(t_erf / t_bare, 3), "target_ratio": 1.2,
                "images_per_s": round(erf_n * len(erf.DEFAULT_COORDS) / t_erf, 2)},
        "redundancy": {"arch": args.red_arch, "stem": "cifar", "input_size": args.red_size, "n_images": red_n,
                       "n_pairs": red_pairs, "samples_per_pair": 16, "bootstrap": 1000,
                       "batch_size": args.red_batch, "extract_local_maps_s": round(t_extract, 3),
                       "statistics_s": round(t_stats, 3), "ratio": round(t_stats / t_extract, 4),
                       "target_ratio": 0.10},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"analysis_throughput-{device.type}{'-quick' if q else ''}.json"
    path = Path(args.out) if args.out else path
    write_json_atomic(path, result)
    print(json.dumps({k: result[k] for k in ("device", "erf", "redundancy")}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
