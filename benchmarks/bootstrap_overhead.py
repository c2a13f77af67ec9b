"""What the per-image records and bootstrap intervals (PROTOCOLS §11, issue 13) add to a
robustness sweep: the noise, crop and spatial-dropout cells of the demo's protocols run through
`run_cell` on the same model and images, timed with the record as it ships and with
`correctness_record` replaced by a no-op; plus the record alone (packing the bits and 1 000
resamples) per cell size. The target is <= 5% of the sweep: the robust figure is
`record_share_of_sweep`, the time spent inside the records over the sweep time of the same
sweeps (load drift between sweeps cancels); `overhead_fraction` compares medians of separate
sweeps and carries the machine's noise.

    python benchmarks/bootstrap_overhead.py              # ResNet-10 width 16 (the demo's), 2 000 images
    python benchmarks/bootstrap_overhead.py --quick      # 500 images

Writes `benchmarks/results/bootstrap_overhead-<device>[-quick].json` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from coanalysis.results import stats
from coanalysis.analyses import crops, dropout, noise
from coanalysis.analyses.context import EvalContext
from coanalysis.features.extraction import EvalData
from coanalysis.probes.linear import LinearProbe
from coanalysis.models.trainer import DatasetInfo, ImageDataset, build_encoder, resolve_precision, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
MODULES = (noise, crops, dropout)


def _data(n: int, size: int) -> EvalData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    info = DatasetInfo(name="random", split="test", num_classes=10, image_size=size, source="benchmark")
    return EvalData.from_dataset(ImageDataset(images, torch.arange(n) % 10, [str(k) for k in range(10)], info))


def _sweep(ctx: EvalContext) -> float:
    t0 = time.perf_counter()
    for protocol, module in ((noise.NoiseProtocol(), noise), (crops.CropProtocol(), crops),
                             (dropout.DropoutProtocol(channel_ps=(), noise_alphas=()), dropout)):
        for key in module.cells(protocol):
            module.run_cell(ctx, protocol, key)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per variant, alternating (median kept)")
    parser.add_argument("--conditions", default="", help="free text saved with the result (machine load, ...)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision("auto", device)
    n = 500 if args.quick else 2000
    torch.manual_seed(0)
    encoder = build_encoder("resnet10", {"stem": "cifar", "width": 16}).to(device).eval()
    probe = LinearProbe(encoder.num_features, 10).to(device).eval()
    ctx = EvalContext(encoder=encoder, probe=probe, data=_data(n, 32), device=device, precision=precision,
                      batch_size=500)
    ctx.local_maps()  # computed once per context in both variants

    shipped = stats.correctness_record
    inside: list[float] = []  # seconds spent in the record during each with-records sweep

    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return shipped(*a, **k)
        finally:
            inside[-1] += time.perf_counter() - t0

    times = {"with_records": [], "without": []}
    share = []
    _sweep(ctx)  # warm-up
    for _ in range(args.repeats):
        for variant in ("with_records", "without"):
            inside.append(0.0)
            for module in MODULES:
                module.correctness_record = timed if variant == "with_records" else (lambda *a, **k: {})
            times[variant].append(_sweep(ctx))
            if variant == "with_records":
                share.append(inside[-1] / times[variant][-1])
    for module in MODULES:
        module.correctness_record = shipped
    with_records, without = float(np.median(times["with_records"])), float(np.median(times["without"]))

    record_alone = {}
    for masks, size in ((1, 500), (1, 2000), (1, 10000), (1, 50000), (5, 2000), (5, 10000)):
        correct = np.random.default_rng(0).random((masks, size)) < 0.8
        t0 = time.perf_counter()
        for _ in range(5):
            stats.correctness_record(correct[0] if masks == 1 else correct, np.arange(size))
        record_alone[str(size) if masks == 1 else f"{masks}x{size}"] = round((time.perf_counter() - t0) / 5, 4)
    cells = sum(len(m.cells(p)) for m, p in ((noise, noise.NoiseProtocol()), (crops, crops.CropProtocol()),
                                                (dropout, dropout.DropoutProtocol(channel_ps=(), noise_alphas=()))))
    result = {
        "benchmark": "bootstrap_overhead", "device": f"{device.type}: {platform.machine()}, "
                                                     f"{torch.get_num_threads()} threads, {os.cpu_count()} cores",
        "torch": torch.__version__, "model": "resnet10 width 16 (CIFAR stem), random weights", "images": n,
        "image_size": 32, "precision": precision,
        "sweep": f"{cells} cells: noise (7 sigmas), crops (4 scales), spatial dropout (6 p x 5 masks)",
        "bootstrap": stats.bootstrap_protocol(), "repeats": args.repeats,
        "sweep_seconds": {"with_records": round(with_records, 3), "without": round(without, 3),
                          "all": {k: [round(t, 3) for t in v] for k, v in times.items()}},
        "overhead_fraction": round(with_records / without - 1, 4),
        # the robust figure: time inside the record / sweep time, within the same sweeps (load
        # drift between sweeps cancels); the target is <= 0.05
        "record_share_of_sweep": {"median": round(float(np.median(share)), 5), "all": [round(x, 5) for x in share]},
        "target": "records add <= 5% to the sweep", "passes": bool(np.median(share) <= 0.05),
        "record_seconds_per_cell": record_alone,
        "load_average": [round(x, 2) for x in os.getloadavg()], "conditions": args.conditions,
    }
    path = RESULTS / f"bootstrap_overhead-{device.type}{'-quick' if args.quick else ''}.json"
    write_json_atomic(path, result)
    print(f"{path}: sweep {with_records:.2f} s with records vs {without:.2f} s without "
          f"({100 * result['overhead_fraction']:+.1f}%); time inside the records "
          f"{100 * float(np.median(share)):.2f}% of the sweep; record alone {record_alone} s per cell")


if __name__ == "__main__":
    main()
