"""Feature extraction throughput against a bare forward pass on the same device and batch size,
and the cost of a feature-cache hit.

- bare forward: `encoder.forward_global` on one batch already on the device (float in [0, 1],
  channels_last and bf16 autocast on GPU), repeated; images/s.
- extraction: `coanalysis.features.extraction.extract_features` over an in-memory uint8 dataset: batching,
  host-to-device copy, uint8 -> float, forward, features back to the host; images/s.
- ratio = extraction / bare (target on GPU in bf16 + channels_last: >= 0.9).
- ViTs (`--arch vit_small`, patch 16 at `--image-size`): the bare forward is a plain timm
  `VisionTransformer` (`vit_small_patch16_224`, fused SDPA attention) holding the same weights, on
  the normalized batch, reading the CLS token; the extraction is co-ssl's encoder (normalization
  inside, resampling position embedding, readout).
- cache: the first cached extraction (forward + atomic write) and a hit in seconds; a hit is timed
  as a new run pays it: a fresh `EvalData` (its content fingerprint computed again) and the read.

Writes benchmarks/results/feature_throughput-<device>.json (atomically). `--quick` is a small
smoke run. Timings are medians of `--repeats` runs.

    python benchmarks/feature_throughput.py                      # resnet50, 224 px, batch 256
    python benchmarks/feature_throughput.py --quick
    python benchmarks/feature_throughput.py --arch vit_small --n 64 --batch-size 32 --repeats 2   # ViT-S/16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from coanalysis.run.environment import describe_device
from coanalysis.features.extraction import EvalData, FeatureCache, extract_features
from coanalysis.models.trainer import autocast, resolve_device, resolve_precision
from coanalysis.models.trainer import DatasetInfo, ImageDataset, build_encoder, write_json_atomic
from coanalysis.models.loading import ModelSource

RESULTS = Path(__file__).parent / "results"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_dataset(n: int, size: int, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    info = DatasetInfo(name="benchmark", split="test", num_classes=10, image_size=size, source="random uint8")
    return ImageDataset(images, labels, [str(k) for k in range(10)], info)


def timm_reference(encoder, size: int, device: torch.device):
    """A plain timm ViT with the encoder's weights: `forward(x) -> CLS token` on normalized images."""
    import timm

    b = encoder.backbone
    model = timm.create_model(f"vit_small_patch{b.patch}_224", pretrained=False, num_classes=0, img_size=size)
    model.load_state_dict(b.state_dict())
    return model.eval().to(device)


@torch.no_grad()
def bare_forward(forward, batch: int, size: int, device: torch.device, precision: str, iters: int) -> float:
    """Images/s of `forward` (the encoder alone, or a bare timm model) on a resident batch."""
    x = torch.rand(batch, 3, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(3):  # warm-up (cuDNN autotuning, allocator)
        with autocast(device, precision):
            forward(x)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        with autocast(device, precision):
            forward(x)
    synchronize(device)
    return batch * iters / (time.perf_counter() - t0)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n", type=int, default=4096, help="images per extraction")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--quick", action="store_true", help="resnet18, 64 px, n = 256, batch 64, 2 repeats")
    parser.add_argument("--conditions", default="", help="what else ran on the machine (recorded in the JSON)")
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/...)")
    args = parser.parse_args()
    if args.quick:
        args.arch, args.image_size, args.n, args.batch_size, args.repeats = "resnet18", 64, 256, 64, 2
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    vit = args.arch.startswith("vit")
    kwargs = {"patch_size": 16, "img_size": args.image_size} if vit else {"stem": "imagenet"}
    encoder = build_encoder(args.arch, kwargs).eval().to(device)
    if device.type == "cuda":
        encoder = encoder.to(memory_format=torch.channels_last)
    encoder.source = ModelSource(path="(random weights)", format="benchmark",
                                 content_hash=f"benchmark-{time.time_ns()}", name=args.arch, arch=args.arch,
                                 arch_kwargs=kwargs)
    if vit:
        reference = timm_reference(encoder, args.image_size, device)
        bare_model = lambda x: reference(encoder.normalize(x))  # noqa: E731 (the normalization co-ssl does inside)
        bare_name = f"timm vit_small_patch16 forward (CLS, fused attention: {reference.blocks[0].attn.fused_attn})"
    else:
        bare_model, bare_name = encoder.forward_global, "encoder.forward_global"
    data = EvalData.from_dataset(random_dataset(args.n, args.image_size))
    iters = max(1, args.n // args.batch_size)

    def extract(cache=None, subset=data):
        return extract_features(encoder, subset, device=device, batch_size=args.batch_size, precision=precision,
                                cache=cache)

    def hit(cache: FeatureCache) -> None:
        assert extract(cache, EvalData.from_dataset(data.dataset)).from_cache

    extract_features(encoder, EvalData.from_dataset(random_dataset(args.batch_size, args.image_size, 1)),
                     device=device, batch_size=args.batch_size, precision=precision)  # warm-up
    bare, extraction = [], []
    for _ in range(args.repeats):
        bare.append(bare_forward(bare_model, args.batch_size, args.image_size, device, precision, iters))
        extraction.append(args.n / timed(extract))
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(Path(folder))
        write_s = timed(lambda: extract(cache))
        hits = [timed(lambda: hit(cache)) for _ in range(args.repeats)]
        entry_bytes = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    bare_ips, extraction_ips = statistics.median(bare), statistics.median(extraction)
    result = {
        "benchmark": "feature_throughput",
        "device": describe_device(device), "torch": torch.__version__, "arch": args.arch,
        "image_size": args.image_size, "batch_size": args.batch_size, "n": args.n, "repeats": args.repeats,
        "precision": precision, "channels_last": device.type == "cuda", "arch_kwargs": kwargs, "bare": bare_name,
        "bare_forward_images_per_s": round(bare_ips, 1), "extraction_images_per_s": round(extraction_ips, 1),
        "ratio_extraction_over_bare": round(extraction_ips / bare_ips, 3),
        "target_ratio_gpu_bf16_channels_last": 0.9,
        "cache_first_extraction_s": round(write_s, 3), "cache_hit_s": round(statistics.median(hits), 4),
        "cache_entry_bytes": entry_bytes,
        "all_runs": {"bare_images_per_s": [round(v, 1) for v in bare],
                     "extraction_images_per_s": [round(v, 1) for v in extraction],
                     "cache_hit_s": [round(v, 4) for v in hits]},
        "conditions": args.conditions or "not recorded",
        "quick": args.quick,
    }
    name = f"feature_throughput-{device.type}{f'-{args.arch}' if vit else ''}{'-quick' if args.quick else ''}.json"
    path = Path(args.out) if args.out else RESULTS / name
    write_json_atomic(path, result)
    print(f"{args.arch} {args.image_size}px batch {args.batch_size} on {result['device']} ({precision}): bare "
          f"{bare_ips:.1f} img/s, extraction {extraction_ips:.1f} img/s, ratio {result['ratio_extraction_over_bare']}, "
          f"cache hit {result['cache_hit_s']} s for {args.n} images -> {path}")


if __name__ == "__main__":
    main()
