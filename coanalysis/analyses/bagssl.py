"""Whole versus the bag of its parts (PROTOCOLS.md section 10, after BagSSL).

For each patch size s (one cell each), on a seeded subset of N evaluation images (nested in the
evaluation subset, see `coanalysis.features.local_maps.subset`):
- K patches of s x s pixels per image, either a `grid` (n = ceil(H / s) patches per side at
  offsets `round(linspace(0, H - s, n))`: tiles exactly when s divides H, overlaps evenly
  otherwise) or K `random` positions drawn per image (seeded by (seed, s, dataset index));
- each patch is fed to the encoder either `resize`d back to the input size (bilinear,
  align_corners=False: what a model trained on resized random crops sees) or at its `native`
  size (the fully convolutional encoder pools whatever map it gets; a ViT resamples its position
  embedding); the choice is recorded. `resize` is the default for both families (PROTOCOLS 13);
- whole-vs-parts: `cos(G(image), mean_k G(patch_k))` per image (mean, std, bootstrap 95% CI),
  and the mean `cos(G(image), G(patch_k))` of single patches;
- bag-of-patches readout: accuracy of the model's probe, unchanged, on the bag average
  `mean_k G(patch_k)`, next to its accuracy on `G(image)` and on single patches, on the same
  images. (Ours: the probe is the one fitted on whole-image features, not one refitted on bags,
  so the number says how well the bag stands in for the whole.)

Our defaults: patch sizes (8, 16, 24, 32) below 128 px input and (32, 64, 96) from 128 px
(`default_patch_sizes`), grid sampling, resize feeding, N = 1 000.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from coanalysis.analyses.context import EvalContext
from coanalysis.analyses.redundancy import summary
from coanalysis.features.extraction import forward_global, to_input
from coanalysis.models.trainer import UserError
from coanalysis.features.local_maps import subset
from coanalysis.probes.linear import accuracy
from coanalysis.data.seeding import per_image_generator
from coanalysis.results.stats import bootstrap_interval, bootstrap_protocol

SAMPLING = ("grid", "stride", "random")
FEEDS = ("resize", "native")


def default_patch_sizes(image_size: int) -> tuple[int, ...]:
    """(8, 16, 24, 32) at CIFAR scale, (32, 64, 96) from 128 px; sizes above the image are dropped."""
    sizes = (8, 16, 24, 32) if image_size < 128 else (32, 64, 96)
    return tuple(s for s in sizes if s <= image_size) or (image_size,)


@dataclass(frozen=True)
class BagSSLProtocol:
    patch_sizes: tuple[int, ...] = (8, 16, 24, 32)
    sampling: str = "grid"  # "grid" or "random"
    patches_per_image: int = 16  # K for random sampling
    feed: str = "resize"  # "resize" or "native"
    n_images: int = 1000  # N (capped at the evaluation subset's size)
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch_sizes", tuple(dict.fromkeys(int(s) for s in self.patch_sizes)))
        if self.sampling not in SAMPLING:
            raise UserError(f"unknown patch sampling {self.sampling!r}; use grid or random")
        if self.feed not in FEEDS:
            raise UserError(f"unknown patch feed {self.feed!r}; use resize or native")
        if not self.patch_sizes or any(s < 1 for s in self.patch_sizes):
            raise UserError(f"patch sizes must be positive pixel counts, got {list(self.patch_sizes)}")
        for name in ("patches_per_image", "n_images", "bootstrap"):
            if getattr(self, name) < 1:
                raise UserError(f"bagssl: {name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "patch_sizes": list(self.patch_sizes),
                "grid": "ceil(H / s) patches per side at round(linspace(0, H - s, n))",
                "resize": "bilinear, align_corners=False, to the input size",
                "bag_probe": "the model's probe (fitted on whole-image global features), unchanged"}


def cells(protocol: BagSSLProtocol) -> list[str]:
    return [f"patch={s}" for s in protocol.patch_sizes]


def grid_offsets(size: int, patch: int) -> list[int]:
    """Offsets of `ceil(size / patch)` patches along one side, evenly spread from 0 to size - patch."""
    n = math.ceil(size / patch)
    if n == 1:
        return [(size - patch) // 2]
    return [round(k * (size - patch) / (n - 1)) for k in range(n)]


def stride_offsets(size: int, patch: int) -> list[int]:
    """The trainer's bag-readout grid along one side: offsets 0, s/2, 2 s/2, ... up to size - s
    (`co_ssl_train.methods.bagssl.bag_of_patches`, stride `max(1, s // 2)`)."""
    return list(range(0, size - patch + 1, max(1, patch // 2)))


def readout_protocol(readout: dict | None, image_size: int, **overrides: Any) -> "BagSSLProtocol":
    """The protocol matching a checkpoint's recorded bag readout (its patch size first, the
    trainer's half-stride grid, native feed) when it has one, else the defaults; `overrides`
    (options the user gave) win."""
    sizes = default_patch_sizes(image_size)
    if readout and readout.get("kind") == "bag-of-patches":
        own = int(readout["patch_size"])
        base = {"patch_sizes": (own,) + tuple(s for s in sizes if s != own), "sampling": "stride", "feed": "native"}
    else:
        base = {"patch_sizes": sizes}
    return BagSSLProtocol(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def patch_offsets(protocol: BagSSLProtocol, size: int, patch: int, indices: torch.Tensor) -> torch.Tensor:
    """`(B, K, 2)` top-left (row, column) offsets of the patches of each image (dataset `indices` `(B,)`)."""
    if protocol.sampling in ("grid", "stride"):
        offs = grid_offsets(size, patch) if protocol.sampling == "grid" else stride_offsets(size, patch)
        grid = torch.tensor([(r, c) for r in offs for c in offs])
        return grid.expand(len(indices), -1, -1)
    out = torch.empty((len(indices), protocol.patches_per_image, 2), dtype=torch.long)
    for row, idx in enumerate(indices.tolist()):
        g = per_image_generator(protocol.seed, patch, idx)
        out[row] = torch.randint(size - patch + 1, (protocol.patches_per_image, 2), generator=g)
    return out


def extract_patches(x: torch.Tensor, offsets: torch.Tensor, patch: int) -> torch.Tensor:
    """Images `(B, 3, H, W)` and offsets `(B, K, 2)` -> patches `(B, K, 3, patch, patch)`."""
    ar = torch.arange(patch, device=x.device)
    offsets = offsets.to(x.device)
    rows = offsets[:, :, 0, None] + ar  # (B, K, s)
    cols = offsets[:, :, 1, None] + ar
    b = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    # advanced indices around the channel slice: result (B, K, s, s, 3)
    return x[b, :, rows[:, :, :, None], cols[:, :, None, :]].permute(0, 1, 4, 2, 3)


def bag_features(encoder, x: torch.Tensor, offsets: torch.Tensor, patch: int, feed: str, precision: str,
                 batch_size: int) -> torch.Tensor:
    """Global representations `(B, K, C)` of the patches of `x` `(B, 3, H, W)`."""
    patches = extract_patches(x, offsets, patch).flatten(0, 1)  # (B*K, 3, s, s)
    out = []
    for start in range(0, len(patches), batch_size):
        chunk = patches[start:start + batch_size]
        if feed == "resize" and chunk.shape[-2:] != x.shape[-2:]:
            chunk = F.interpolate(chunk, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        out.append(forward_global(encoder, chunk, precision))
    return torch.cat(out).view(x.shape[0], offsets.shape[1], -1)


def run_cell(ctx: EvalContext, protocol: BagSSLProtocol, key: str) -> dict[str, Any]:
    try:
        patch = int(key.split("=", 1)[1])
    except (IndexError, ValueError):
        raise UserError(f"unknown bagssl cell {key!r}; cells are patch=<pixels>") from None
    data = subset(ctx.data, protocol.n_images)
    size = data.info.image_size
    if patch > size:
        raise UserError(f"patch size {patch} px is larger than the {size} px images; choose sizes up to {size}")
    token = getattr(getattr(ctx.encoder, "backbone", None), "patch", None)  # a ViT's patch side (PROTOCOLS 13)
    if protocol.feed == "native" and token is not None and patch < token:
        raise UserError(f"a {patch} px image patch fed natively to a ViT with {token} px patches holds no token; "
                        "use --feed resize (the default for ViTs) or larger patch sizes")
    whole_bag, whole_patch, labels, preds = [], [], [], {"global": [], "bag": [], "patch": []}
    k = None
    per_image = {"grid": len(grid_offsets(size, patch)) ** 2, "stride": len(stride_offsets(size, patch)) ** 2}.get(
        protocol.sampling, protocol.patches_per_image)
    # a BagSSL checkpoint read through its bag: whole images and patches go through the plain encoder
    encoder = getattr(ctx.encoder, "plain", ctx.encoder)
    images_per_batch = max(1, ctx.batch_size // per_image)  # about one inference batch of patches at a time
    from tqdm import tqdm

    with torch.no_grad(), tqdm(total=len(data), disable=not ctx.progress, leave=False,
                               desc=f"bagssl {patch}px") as bar:
        for images, y, positions in data.batches(images_per_batch, ctx.workers):
            x = to_input(images, ctx.device)
            whole = forward_global(encoder, x, ctx.precision)  # (B, C)
            offsets = patch_offsets(protocol, size, patch, data.indices[positions])
            parts = bag_features(encoder, x, offsets, patch, protocol.feed, ctx.precision, ctx.batch_size)
            k = parts.shape[1]
            bag = parts.mean(1)
            whole_bag.append(F.cosine_similarity(whole, bag, dim=-1).cpu())
            whole_patch.append(F.cosine_similarity(whole[:, None], parts, dim=-1).mean(1).cpu())
            labels.append(y)
            if ctx.probe is not None:
                preds["global"].append(ctx.probe(whole).cpu())
                preds["bag"].append(ctx.probe(bag).cpu())
                preds["patch"].append(ctx.probe(parts.flatten(0, 1)).argmax(1).view(len(y), k).cpu())
            bar.update(len(y))
    labels_t = torch.cat(labels)
    out: dict[str, Any] = {"patch_size": patch, "patches_per_image": k, "image_size": size, "n": len(labels_t),
                           "sampling": protocol.sampling, "feed": protocol.feed,
                           "readout": ctx.encoder.source.readout if hasattr(ctx.encoder, "source") else None,
                           "cos_whole_bag": summary(torch.cat(whole_bag), protocol.bootstrap, protocol.seed + patch),
                           "cos_whole_patch": summary(torch.cat(whole_patch), protocol.bootstrap,
                                                      protocol.seed + patch + 1)}
    if protocol.sampling in ("grid", "stride"):
        out["grid_offsets"] = grid_offsets(size, patch) if protocol.sampling == "grid" else stride_offsets(size, patch)
    if ctx.probe is not None:
        logits = {k: torch.cat(preds[k]) for k in ("global", "bag")}
        out["global_accuracy"] = accuracy(logits["global"], labels_t)
        out["bag_accuracy"] = accuracy(logits["bag"], labels_t)
        patch_right = (torch.cat(preds["patch"]) == labels_t[:, None]).double()  # (n, k)
        out["patch_accuracy"] = float(patch_right.mean())
        # 95% image-bootstrap intervals (PROTOCOLS 11); a patch's is over images of their k-patch means
        per_image = {k: (v.argmax(1) == labels_t).numpy() for k, v in logits.items()}
        per_image["patch"] = patch_right.mean(1).numpy()
        out["intervals"] = {k: list(bootstrap_interval(per_image[k])) for k in ("global", "bag", "patch")}
        out["bootstrap"] = bootstrap_protocol()
    return out
