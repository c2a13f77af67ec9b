"""Effective receptive fields of local vectors (PROTOCOLS.md section 9), through captum.

For a local vector at normalized map coordinate (u, v) (u down the rows, v along the columns;
index `floor(u (h - 1) + 0.5)`) the unit's score is `s = sum_c ReLU(L[c, y, x])` and its ERF map
is `|attribution of s to the input pixels|` summed over the colour channels, `(H, W)` per image.
Methods (captum wraps the score function): `gradient` (`Saliency`, the default),
`integrated-gradients` (`IntegratedGradients`, black-image baseline) and `smoothgrad`
(`NoiseTunnel(Saliency)`, Gaussian pixel noise). Images in eval mode are independent, so one
call (one backward pass for the plain gradient) covers a whole batch; never one pass per image.

Per cell (method, coordinate), on N images:
- ERF size: the side of the smallest square centred on the unit's input-space centre that holds
  20%, 50% and 90% of an image's map mass (mean and std over images), and the same for the
  average map (each image's map normalized to unit mass first); the support (the side of the
  centred square holding every non-zero pixel, and the bounding box of the non-zero pixels),
  next to the analytic receptive field `encoder.receptive_field(layer)` (None when unknown; for a
  ViT's patch token the bound is the whole image, recorded as `rf_bound: "image"`);
- the average map and the maps of the first `show` images with the images themselves, stored
  compactly (float16 maps, PNG images, at most `store_px` per side) so figures need nothing else.

The unit's centre is ours, PROTOCOLS is silent: it is read off the non-zero support of the plain
gradient averaged over the first batch (its middle when the support is not cut by the image
border; the uncut edge minus half the analytic RF when one side is cut), and falls back to the
stride-aligned position `index * H / h` (exact for same-padded strided nets such as co-ssl's
ResNets) when the support covers the image. How it was found is recorded with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from coanalysis.analyses.context import EvalContext
from coanalysis.results.derived.erf import MASSES, METHODS, encode_image, encode_map
from coanalysis.features.extraction import to_input
from coanalysis.models.trainer import UserError, autocast
from coanalysis.features.local_maps import resolve_layer
from coanalysis.data.sample_images import DEFAULT, ImageSet, load_images

DEFAULT_COORDS = ((0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5))
EVAL = "eval"  # images spec: the first images of the context's evaluation data


@dataclass(frozen=True)
class ERFProtocol:
    coords: tuple[tuple[float, float], ...] = DEFAULT_COORDS  # (u, v) in [0, 1]^2
    methods: tuple[str, ...] = ("gradient",)
    images: tuple[str, ...] = (DEFAULT,)  # "default", "eval", files or folders
    n_images: int = 64
    image_size: int | None = None  # None: the checkpoint's input size
    layer: str | None = None  # None: the encoder's local layer
    ig_steps: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_sigma: float = 0.15  # noise std in pixel units (images in [0, 1])
    show: int = 4  # images whose own maps are stored for the figure
    store_px: int = 112  # stored maps and images are area-downsampled to at most this side
    seed: int = 0  # SmoothGrad noise

    def __post_init__(self) -> None:
        # coordinates read back from JSON are lists: normalize, and drop repeats (merged conditions)
        coords = tuple(dict.fromkeys((float(u), float(v)) for u, v in self.coords))
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "methods", tuple(dict.fromkeys(self.methods)))
        object.__setattr__(self, "images", tuple(self.images))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise UserError(f"unknown ERF method {', '.join(unknown) or '(none)'}; choose from: {', '.join(METHODS)}")
        for u, v in self.coords:
            if not (0 <= u <= 1 and 0 <= v <= 1):
                raise UserError(f"ERF coordinate ({u:g}, {v:g}) is outside [0, 1] x [0, 1]")
        if not self.coords:
            raise UserError("give at least one ERF coordinate")
        if EVAL in self.images and len(self.images) > 1:
            raise UserError("--images eval uses the evaluation data; do not mix it with files")
        for name in ("n_images", "ig_steps", "smoothgrad_samples", "store_px"):
            if getattr(self, name) < 1:
                raise UserError(f"ERF {name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "coords": [list(c) for c in self.coords], "methods": list(self.methods),
                "images": list(self.images), "masses": list(MASSES),
                "score": "sum_c ReLU(L[c, y, x]); map = |attribution| summed over colour channels",
                "index": "floor(u * (h - 1) + 0.5), u along rows, v along columns",
                "ig_baseline": "black image (0)", "average": "per-image maps normalized to unit mass, then averaged",
                "smoothgrad_noise": "seeded by (seed, batch index): depends on the batch size",
                "centre": "support of the first batch's plain gradient, else index * H / h (ours)"}


def cell_key(method: str, coord: tuple[float, float]) -> str:
    return f"{method}@{coord[0]:g},{coord[1]:g}"


def cells(protocol: ERFProtocol) -> list[str]:
    return [cell_key(m, c) for m in protocol.methods for c in protocol.coords]


def parse_key(key: str) -> tuple[str, tuple[float, float]]:
    method, _, coord = key.partition("@")
    u, v = (float(t) for t in coord.split(","))
    return method, (u, v)


def map_index(u: float, size: int) -> int:
    """Map index of normalized coordinate `u` on a side of `size` positions (halves round up)."""
    return math.floor(u * (size - 1) + 0.5)


# ---------------------------------------------------------------- attribution through captum

def unit_score(encoder, layer: str, y: int, x: int, precision: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images `(B, 3, H, W)` -> `(B,)` scores `sum_c ReLU(L[b, c, y, x])` (a callable for captum)."""
    def score(images: torch.Tensor) -> torch.Tensor:
        with autocast(images.device, precision):
            local = encoder.forward_local(images, layer)
        return local[:, :, y, x].float().relu().sum(1)
    return score


def attribute(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, method: str,
              protocol: ERFProtocol, batch_size: int, seed: int = 0) -> torch.Tensor:
    """ERF maps `(B, H, W)`: |attribution of `score` to `x` `(B, 3, H, W)`| summed over channels."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    x = x.detach().clone().requires_grad_(True)
    if method == "gradient":
        attr = Saliency(score).attribute(x, abs=True)
    elif method == "integrated-gradients":
        # captum evaluates at least 2 steps of every image per chunk
        attr = IntegratedGradients(score).attribute(x, baselines=0.0, n_steps=protocol.ig_steps,
                                                    internal_batch_size=max(batch_size, 2 * len(x)))
    elif method == "smoothgrad":
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            attr = NoiseTunnel(Saliency(score)).attribute(
                x, nt_type="smoothgrad", nt_samples=protocol.smoothgrad_samples, stdevs=protocol.smoothgrad_sigma,
                nt_samples_batch_size=min(protocol.smoothgrad_samples, max(1, batch_size // len(x))), abs=True)
    else:
        raise UserError(f"unknown ERF method {method!r}; choose from: {', '.join(METHODS)}")
    return attr.detach().abs().sum(1).float()


def erf_maps(encoder, images: torch.Tensor, coord: tuple[float, float], method: str, protocol: ERFProtocol, *,
             device: torch.device, precision: str = "fp32", batch_size: int = 64, layer: str | None = None,
             progress: bool = False) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """ERF maps `(N, H, W)` (on the CPU) of the unit at `coord` for uint8 images `(N, 3, H, W)`,
    with the unit's map index (y, x) and the map size (h, w). One captum call per batch."""
    layer = layer or encoder.local_layer
    with torch.no_grad():
        h, w = encoder.forward_local(to_input(images[:1], device), layer).shape[-2:]
    y, x = map_index(coord[0], h), map_index(coord[1], w)
    score = unit_score(encoder, layer, y, x, precision)
    out = []
    from tqdm import tqdm

    for b, start in enumerate(tqdm(range(0, len(images), batch_size), disable=not progress, leave=False,
                                   desc=f"ERF {method} ({coord[0]:g}, {coord[1]:g})")):
        batch = to_input(images[start:start + batch_size], device)
        out.append(attribute(score, batch, method, protocol, batch_size, seed=protocol.seed * 1_000_003 + b).cpu())
    return torch.cat(out), (y, x), (h, w)


# ---------------------------------------------------------------- ERF size

def support_box(mask: torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((top, bottom), (left, right)) inclusive bounds of the non-zero pixels of `mask` `(H, W)`."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if len(rows) == 0:
        return None
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def _axis_centre(bounds: tuple[int, int] | None, size: int, index: int, map_side: int,
                 rf: int | None) -> tuple[float, str]:
    if bounds is not None:
        a, b = bounds
        if a > 0 and b < size - 1:
            return (a + b) / 2, "support"
        if rf is not None and a == 0 and b < size - 1:
            return b - (rf - 1) / 2, "support and analytic RF"
        if rf is not None and b == size - 1 and a > 0:
            return a + (rf - 1) / 2, "support and analytic RF"
    return index * size / map_side, "stride-aligned"


def unit_centre(gradient_maps: torch.Tensor, index: tuple[int, int], map_size: tuple[int, int],
                rf: int | None) -> tuple[tuple[float, float], str]:
    """The unit's input-space centre (cy, cx) from plain-gradient maps `(B, H, W)`, and how it was found."""
    box = support_box(gradient_maps.sum(0) > 0)
    H, W = gradient_maps.shape[-2:]
    cy, how_y = _axis_centre(box[0] if box else None, H, index[0], map_size[0], rf)
    cx, how_x = _axis_centre(box[1] if box else None, W, index[1], map_size[1], rf)
    return (cy, cx), how_y if how_y == how_x else f"rows: {how_y}; columns: {how_x}"


def _chebyshev(shape: tuple[int, int], centre: tuple[float, float]) -> torch.Tensor:
    ys = torch.arange(shape[0], dtype=torch.float64) - centre[0]
    xs = torch.arange(shape[1], dtype=torch.float64) - centre[1]
    return torch.maximum(ys.abs()[:, None], xs.abs()[None, :])


def mass_square_sides(maps: torch.Tensor, centre: tuple[float, float],
                      masses: tuple[float, ...] = MASSES) -> torch.Tensor:
    """`(B, len(masses))` sides (px) of the smallest squares centred on `centre` that hold each
    fraction of the mass of each map `(B, H, W)`; NaN for an all-zero map.

    A square of side `2 d + 1` holds the pixels at Chebyshev distance <= d from the centre.
    """
    d = _chebyshev(tuple(maps.shape[-2:]), centre).flatten()
    order = torch.argsort(d, stable=True)
    d_sorted = d[order]
    cum = maps.flatten(1).double()[:, order].cumsum(1)
    total = cum[:, -1:]
    sides = []
    for q in masses:
        idx = torch.searchsorted(cum, q * total).clamp_(max=cum.shape[1] - 1)
        sides.append(2 * d_sorted[idx.flatten()] + 1)
    out = torch.stack(sides, 1)
    out[total.flatten() <= 0] = float("nan")
    return out


def support_side(mask: torch.Tensor, centre: tuple[float, float]) -> float | None:
    """Side of the smallest square centred on `centre` holding every non-zero pixel of `mask` `(H, W)`."""
    if not mask.any():
        return None
    return float(2 * _chebyshev(tuple(mask.shape), centre)[mask].max() + 1)


def mass_levels(average: torch.Tensor, masses: tuple[float, ...] = (0.5, 0.9)) -> dict[str, float]:
    """Thresholds t such that the pixels of `average` `(H, W)` at or above t hold each mass fraction
    (the contour levels of the figure)."""
    values = average.flatten().double().sort(descending=True).values
    cum = values.cumsum(0)
    total = float(cum[-1])
    out = {}
    for q in masses:
        idx = int(torch.searchsorted(cum, q * total).clamp(max=len(values) - 1))
        out[f"{round(100 * q)}"] = float(values[idx])
    return out


# ---------------------------------------------------------------- compact storage

def downsample(maps: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average `(B, H, W)` or `(B, 3, H, W)` by an integer factor (floor of the size)."""
    if factor == 1:
        return maps
    squeeze = maps.ndim == 3
    x = maps[:, None] if squeeze else maps
    x = torch.nn.functional.avg_pool2d(x.float(), factor)
    return x[:, 0] if squeeze else x


# ---------------------------------------------------------------- cells

def image_size_of(ctx: EvalContext, protocol: ERFProtocol) -> int:
    source = getattr(ctx.encoder, "source", None)
    size = protocol.image_size or (source.input_size if source is not None else None) \
        or (ctx.data.info.image_size if ctx.data is not None else None)
    if not size:
        raise UserError("the checkpoint does not record its input size; pass --image-size")
    return size


def erf_images(ctx: EvalContext, protocol: ERFProtocol) -> ImageSet:
    """The protocol's images at the analysis size (kept in `ctx.image_sets` for the other cells)."""
    size = image_size_of(ctx, protocol)
    key = (tuple(protocol.images), size, protocol.n_images)
    if key not in ctx.image_sets:
        if protocol.images == (EVAL,):
            chunks, names = [], []
            for images, _, positions in ctx.data.batches(protocol.n_images):
                chunks.append(images if images.shape[-1] == size else
                              torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear",
                                                              antialias=True).round().clamp(0, 255).byte())
                names += [f"{ctx.data.info.name}:{int(ctx.data.indices[p])}" for p in positions.tolist()]
                break
            ctx.image_sets[key] = ImageSet(torch.cat(chunks), names, [], (EVAL,))
        else:
            ctx.image_sets[key] = load_images(protocol.images, size, protocol.n_images)
    return ctx.image_sets[key]


def _stats(sides: torch.Tensor) -> dict[str, dict[str, float | None]]:
    out = {}
    for k, q in enumerate(MASSES):
        col = sides[:, k]
        col = col[torch.isfinite(col)]
        out[f"{round(100 * q)}"] = {"mean": float(col.mean()) if len(col) else None,
                                    "std": float(col.std()) if len(col) > 1 else (0.0 if len(col) else None)}
    return out


def run_cell(ctx: EvalContext, protocol: ERFProtocol, key: str) -> dict[str, Any]:
    method, coord = parse_key(key)
    if method not in METHODS:
        raise UserError(f"unknown ERF method {method!r}; choose from: {', '.join(METHODS)}")
    layer = resolve_layer(ctx.encoder, protocol.layer)
    image_set = erf_images(ctx, protocol)
    images = image_set.images
    maps, index, map_size = erf_maps(ctx.encoder, images, coord, method, protocol, device=ctx.device,
                                     precision=ctx.precision, batch_size=ctx.batch_size, layer=layer,
                                     progress=ctx.progress)
    rf = ctx.encoder.receptive_field(layer)
    # the unit's centre comes from the plain gradient (IG vanishes on black pixels)
    first = images[:ctx.batch_size]
    gradient = maps[:len(first)] if method == "gradient" else erf_maps(
        ctx.encoder, first, coord, "gradient", protocol, device=ctx.device, precision=ctx.precision,
        batch_size=ctx.batch_size, layer=layer)[0]
    centre, how = unit_centre(gradient, index, map_size, rf)
    sides = mass_square_sides(maps, centre)
    mass = maps.flatten(1).sum(1)
    alive = mass > 0
    average = (maps[alive] / mass[alive, None, None]).mean(0) if alive.any() else torch.zeros(maps.shape[1:])
    box = support_box(average > 0)
    H, W = maps.shape[-2:]
    factor = max(1, math.ceil(max(H, W) / protocol.store_px))
    stored = downsample(average[None], factor)[0]
    shown = images[:protocol.show]
    if factor > 1:
        shown = downsample(shown, factor).round().clamp(0, 255).byte()
    examples = [{"name": image_set.names[k], "image": encode_image(shown[k].permute(1, 2, 0).numpy()),
                 "map": encode_map(downsample(maps[k:k + 1], factor)[0].numpy()),
                 "sizes": dict(zip((f"{round(100 * q)}" for q in MASSES), sides[k].tolist()))}
                for k in range(len(shown))]
    mean_sides = mass_square_sides(average[None], centre)[0].tolist()
    return {
        "method": method, "coord": list(coord), "index": list(index), "map_size": list(map_size),
        "input_size": [H, W], "layer": layer, "centre": list(centre), "centre_from": how,
        "analytic_rf": rf, "n_images": len(images), "n_zero_maps": int((~alive).sum()),
        "sizes": _stats(sides), "mean_map_sizes": dict(zip((f"{round(100 * q)}" for q in MASSES), mean_sides)),
        "support_square": support_side(average > 0, centre),
        "support_box": [box[0][1] - box[0][0] + 1, box[1][1] - box[1][0] + 1] if box else None,
        "mean_map": encode_map(stored.numpy()), "mean_map_levels": mass_levels(stored), "store_factor": factor,
        "examples": examples, "images": image_set.describe(), "image_names": image_set.names,
        # PROTOCOLS 13: a ViT patch token attends to every patch, its analytic receptive field is the image
        **({"rf_bound": "image"} if getattr(ctx.encoder, "family", None) == "vit" else {}),
    }
