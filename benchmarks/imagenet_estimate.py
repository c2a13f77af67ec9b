"""Row (d) of `robustness_throughput.py`: an estimate of RobustBench's ImageNet-C protocol on a
16-core H100 box, from per-image corruption times measured here at 224 px."""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.timing import make_images, timed


def estimate_imagenet(per_image: int, efficiency: float, device: torch.device, assumed_rate: float) -> dict:
    from coanalysis.results.corruption_names import STANDARD, corruption_seed
    from coanalysis.data.corruption.pool import corrupt_images

    images, _ = make_images(per_image, 224, seed=1)
    nhwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    corrupt_images(nhwc[:1], "glass_blur", 1, [0])  # compile glass_blur's kernel before timing
    seconds = {}
    for c in STANDARD:
        for s in range(1, 6):
            t0 = time.perf_counter()
            corrupt_images(nhwc, c, s, [corruption_seed(0, c, s, i) for i in range(per_image)], workers=1)
            seconds[f"{c}/{s}"] = (time.perf_counter() - t0) / per_image
    cpu_s_per_image = sum(seconds.values())  # one image through all 75 cells, one core
    n, cores = 5000, 16
    generation = n * cpu_s_per_image / (cores * efficiency)
    forward_rate, measured = assumed_rate, False
    if device.type == "cuda":
        from coanalysis.models.trainer import autocast, build_encoder

        net = build_encoder("resnet50", {}, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)).to(device).eval()
        net = net.to(memory_format=torch.channels_last)
        x = torch.rand(256, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)

        def forward() -> None:
            with torch.no_grad(), autocast(device, "bf16"):
                net.forward_global(x)

        forward_rate, measured = 256 / timed(forward, device, repeats=5), True
    forward = n * 76 / forward_rate
    return {"what": "ESTIMATE, not a measurement: RobustBench ImageNet-C protocol (5 000 images, 15 corruptions x "
                    "5 severities + clean, 224 px, ResNet-50) on a 16-core H100 box, corruptions generated from "
                    "scratch",
            "corruption_cpu_s_per_image_75_cells": cpu_s_per_image, "images_timed_per_cell": per_image,
            "per_cell_ms_per_image": {k: 1000 * v for k, v in seconds.items()},
            "parallel_efficiency_used": efficiency, "cores": cores, "generation_s": generation,
            "resnet50_224_forward_images_per_s": forward_rate, "forward_rate_measured": measured,
            "forward_s": forward, "total_s_overlapped": max(generation, forward) + generation / 75,
            "total_s_serial": generation + forward, "target_s": 900,
            "assumptions": ["the H100 box's cores corrupt images as fast as one core of the machine that ran this",
                            "16 worker processes keep the parallel efficiency measured here from 1 to 2 workers",
                            "the look-ahead overlaps each cell's generation with the previous cell's forward pass",
                            "decoding the 5 000 ImageNet JPEGs once and writing the 56 GB uint8 cache are not counted"]
            + ([] if measured else [f"ResNet-50 bf16 forward at 224 px on an H100: {assumed_rate:g} images/s "
                                    "(--h100-forward-rate; not measured, this run had no GPU)"])}
