"""Redundancy of local representations (PROTOCOLS.md section 8).

On the local maps `L` `(N, C, h, w)` of N evaluation images (a seeded subset, see
`coanalysis.features.local_maps`) and their global representations `G`: the mean over positions of L,
or a ViT's own readout (PROTOCOLS 13: its CLS token, or the mean of the patch tokens through
`fc_norm`); cells `pairs` and `similarity` record which (`global`):

- cell `pairs`: for P random image pairs (i, j), i != j, `g_ij = cos(G_i, G_j)` and
  `l_ij = mean over S sampled position pairs of cos(L_i^p, L_j^p')`; positions are `aligned`
  (p' = p) or `random` (p and p' drawn independently). The Pearson r between g and l over pairs,
  with a percentile-bootstrap 95% CI that resamples images (pairs that share an image are not
  independent; each pair is weighted by its two images' multiplicities), and a seeded subsample
  of the (g, l) points for the scatter;
- cell `similarity`: per image, the intra-image local similarity `mean over p != q of
  cos(L^p, L^q)` and the local-to-own-global similarity `mean over p of cos(L^p, G)`; their
  mean, std, bootstrap 95% CI of the mean (resampling images) and quantiles;
- cells `part=centre` and `part=random`: probe accuracy when `G_i` is replaced by one local
  vector, at the centre position (index `floor(0.5 (h - 1) + 0.5)`) or at one random position
  per image (`repeats` draws, mean and std), with the model's probe unchanged. Each cell also
  gives the probe accuracy of `G` on the same images.

The chance level (PROTOCOLS 12) replaces each image's local vectors by other images' at the same
positions and recomputes G from them as the readout does (the mean; a ViT's `avg` through its
`fc_norm`); a CLS token is not a function of the final patch tokens, so each image keeps its own and
r_null is about 0 at any map size (a mean readout's is above 0: G is made of the L it is compared with).

Everything is a matrix operation on the cached maps: unit-normalized local vectors, closed forms
for the within-image means (`sum over p != q = |sum_p n_p|^2 - sum_p |n_p|^2`), pairs processed
in chunks. A zero vector has cosine 0 with everything. Our defaults (PROTOCOLS leaves them open):
random positions, S = 16 position pairs per image pair drawn with replacement, 1 000 bootstrap
resamples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from coanalysis.analyses.context import EvalContext
from coanalysis.models.trainer import UserError
from coanalysis.features.local_maps import LocalMaps
from coanalysis.probes.linear import accuracy
from coanalysis.data.seeding import per_image_generator

CELLS = ("pairs", "similarity", "part=centre", "part=random")
POSITIONS = ("random", "aligned")
CHUNK_ELEMENTS = 1 << 24  # gathered local vectors held at once (64 MB in float32)


@dataclass(frozen=True)
class RedundancyProtocol:
    n_images: int = 1000  # N (capped at the evaluation subset's size)
    n_pairs: int = 10000  # P
    positions: str = "random"  # "random" or "aligned"
    samples_per_pair: int = 16  # S position pairs averaged into each l_ij
    layer: str | None = None  # None: the encoder's local layer (the probe's)
    bootstrap: int = 1000  # resamples for the 95% CIs
    repeats: int = 5  # random positions drawn per image for `part=random`
    scatter_points: int = 3000  # (g, l) pairs stored for the figure
    seed: int = 0

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise UserError(f"unknown positions {self.positions!r}; use random or aligned")
        for name in ("n_images", "n_pairs", "samples_per_pair", "bootstrap", "repeats"):
            if getattr(self, name) < 1:
                raise UserError(f"redundancy: {name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.n_images < 2:
            raise UserError("redundancy needs at least 2 images")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ci": "95%, percentile bootstrap resampling images (for r: pairs weighted by the "
                                      "product of their images' multiplicities)",
                "centre_index": "floor(0.5 * (h - 1) + 0.5)", "zero_vectors": "cosine 0",
                "position_sampling": "with replacement, one seeded stream for all pairs"}


def cells(protocol: RedundancyProtocol) -> list[str]:
    return list(CELLS)


# ---------------------------------------------------------------- statistics on tensors

def unit_locals(maps: torch.Tensor) -> torch.Tensor:
    """`(N, C, h, w)` maps -> unit-norm local vectors `(N, h*w, C)` float32 (zero vectors stay zero)."""
    return F.normalize(maps.float().flatten(2).transpose(1, 2), dim=-1)


def pearson(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Pearson r of two 1-D tensors (float64), None when either is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.pow(2).sum() * y.pow(2).sum()).sqrt()
    return None if denom == 0 else float((x * y).sum() / denom)


def bootstrap_pearson(x: torch.Tensor, y: torch.Tensor, resamples: int, seed: int,
                      pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                      n_images: int | None = None) -> tuple[float, float] | None:
    """Percentile-bootstrap 95% CI of Pearson r between `x` and `y` `(P,)`.

    Without `pairs` the (x, y) points are resampled with replacement. With `pairs` (the image
    indices i, j `(P,)` of each point, among `n_images`) the images are resampled instead and each
    pair is weighted by the product of its two images' multiplicities: pairs sharing an image are
    not independent, and resampling pairs would give too narrow an interval.
    """
    g = torch.Generator().manual_seed(seed)
    # weighted sums as one matrix product: W (b, P) @ [1, x, y, x^2, y^2, xy] (P, 6)
    x, y = x.double(), y.double()
    moments = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y], 1)
    n = len(x)
    rs = []
    step = max(1, CHUNK_ELEMENTS // (8 * n))
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        if pairs is None:
            w = _counts(b, n, g, x.device)
        else:
            counts = _counts(b, n_images, g, x.device)
            w = counts[:, pairs[0]] * counts[:, pairs[1]]
        sw, sx, sy, sxx, syy, sxy = (w @ moments).unbind(1)
        rs.append((sw * sxy - sx * sy) / ((sw * sxx - sx * sx) * (sw * syy - sy * sy)).sqrt())
    r = torch.cat(rs)
    r = r[torch.isfinite(r)]
    if len(r) == 0:
        return None
    return float(torch.quantile(r, 0.025)), float(torch.quantile(r, 0.975))


def _counts(resamples: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """`(resamples, n)` float64 multiplicities of n items drawn n times with replacement (drawn on the
    CPU, so every device gets the same resamples)."""
    idx = torch.randint(n, (resamples, n), generator=generator).to(device)
    counts = torch.zeros(resamples, n, dtype=torch.float64, device=device)
    return counts.scatter_add_(1, idx, torch.ones(resamples, n, dtype=torch.float64, device=device))


def bootstrap_mean(values: torch.Tensor, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap 95% CI of the mean of `values` `(N,)`."""
    g = torch.Generator().manual_seed(seed)
    values = values.double()
    step = max(1, CHUNK_ELEMENTS // (8 * len(values)))
    means = [_counts(min(step, resamples - s), len(values), g, values.device) @ values / len(values)
             for s in range(0, resamples, step)]
    m = torch.cat(means)
    return float(torch.quantile(m, 0.025)), float(torch.quantile(m, 0.975))


def sample_pairs(n: int, pairs: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`pairs` uniform random image pairs (i, j) with i != j: two `(P,)` index tensors."""
    i = torch.randint(n, (pairs,), generator=generator)
    j = torch.randint(n - 1, (pairs,), generator=generator)
    return i, j + (j >= i).long()


def pair_similarities(units: torch.Tensor, globals_: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
                      p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, l) of pairs (i, j) `(P,)` with sampled positions p, q `(P, S)`.

    units: `(N, K, C)` unit local vectors; globals_: `(N, C)` global vectors.
    g = cos(G_i, G_j); l = mean over s of cos(L_i^{p_s}, L_j^{q_s}).
    """
    gn = F.normalize(globals_.float(), dim=-1)
    g = (gn[i] * gn[j]).sum(-1)
    n, k, c = units.shape
    rows = units.reshape(n * k, c)
    a = (i[:, None] * k + p).flatten()  # row of each sampled local vector
    b = (j[:, None] * k + q).flatten()
    dots = torch.empty(len(a), device=units.device)
    step = max(1, CHUNK_ELEMENTS // c)
    for start in range(0, len(a), step):
        sl = slice(start, start + step)
        dots[sl] = torch.einsum("rc,rc->r", rows.index_select(0, a[sl]), rows.index_select(0, b[sl]))
    return g, dots.view(p.shape).mean(-1)


def within_image_similarities(units: torch.Tensor, globals_: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Per image: intra-image local similarity `(N,)` (None when h*w = 1) and local-to-own-global `(N,)`.

    units: `(N, K, C)` unit local vectors; globals_: `(N, C)`.
    """
    k = units.shape[1]
    total = units.sum(1)  # (N, C)
    local_to_global = (total * F.normalize(globals_.float(), dim=-1)).sum(-1) / k
    if k < 2:
        return None, local_to_global
    self_terms = units.pow(2).sum((1, 2))  # 1 per non-zero vector
    intra = (total.pow(2).sum(-1) - self_terms) / (k * (k - 1))
    return intra, local_to_global


def summary(values: torch.Tensor, resamples: int, seed: int) -> dict[str, Any]:
    v = values.double()
    qs = torch.quantile(v, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64, device=v.device)).tolist()
    return {"mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0,
            "ci95": list(bootstrap_mean(v, resamples, seed)), "quantiles": dict(zip(("5", "25", "50", "75", "95"), qs)),
            "n": len(v)}


def centre_index(size: int) -> int:
    """Index of normalized coordinate 0.5 in a map side of `size` (PROTOCOLS 9: round(u (h - 1)), halves up)."""
    return math.floor(0.5 * (size - 1) + 0.5)


# ---------------------------------------------------------------- cells

def _maps(ctx: EvalContext, protocol: RedundancyProtocol) -> LocalMaps:
    lm = ctx.local_maps(protocol.n_images, protocol.layer)
    if lm.global_features.shape[1] != lm.maps.shape[1]:
        raise UserError(f"redundancy compares local vectors with G of the same width; the {ctx.encoder.readout} "
                        f"readout has {lm.global_features.shape[1]} features for {lm.maps.shape[1]} per token: use "
                        "--global cls or --global avg")
    if len(lm.labels) < 2:
        raise UserError("redundancy needs at least 2 decodable images")
    return lm


def _on_device(lm: LocalMaps, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit local vectors `(N, K, C)`, global vectors `(N, C)`) float32 on `device`."""
    maps = lm.maps.to(device)
    return unit_locals(maps), lm.global_features.to(device)  # a ViT's G is its readout (PROTOCOLS 13)


def null_maps(maps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The chance-level null of PROTOCOLS 12: `(N, C, h, w)` maps in which the local vector of image
    i at each position is the one of another image (drawn uniformly, per image and position) at
    the same position, so `G_i` (their mean) is the mean of unrelated vectors."""
    n, c, h, w = maps.shape
    k = h * w
    source = torch.arange(n)[:, None] + 1 + torch.randint(n - 1, (n, k), generator=generator)  # never i itself
    flat = maps.flatten(2).transpose(1, 2)  # (N, K, C)
    picked = flat[source.remainder(n).to(maps.device), torch.arange(k, device=maps.device)[None, :]]  # (N, K, C)
    return picked.transpose(1, 2).reshape(n, c, h, w)


def pairs_correlation(maps: torch.Tensor, protocol: RedundancyProtocol, generator: torch.Generator,
                      bootstrap_seed: int | None = None, globals_: torch.Tensor | None = None) -> dict[str, Any]:
    """r between g and l over P pairs of `maps` `(N, C, h, w)` with G = `globals_` `(N, C)` (None:
    the mean of L), drawing pairs and positions from `generator`; with `bootstrap_seed`, also its
    image-bootstrap 95% CI."""
    units = unit_locals(maps)
    glob = maps.mean(dim=(2, 3), dtype=torch.float32) if globals_ is None else globals_.float()
    device = maps.device
    n, k = units.shape[:2]
    i, j = sample_pairs(n, protocol.n_pairs, generator)
    p = torch.randint(k, (protocol.n_pairs, protocol.samples_per_pair), generator=generator)
    q = p if protocol.positions == "aligned" else torch.randint(k, p.shape, generator=generator)
    i, j, p, q = (t.to(device) for t in (i, j, p, q))
    gs, ls = pair_similarities(units, glob, i, j, p, q)
    r = pearson(gs, ls)
    ci = bootstrap_pearson(gs, ls, protocol.bootstrap, bootstrap_seed, pairs=(i, j), n_images=n) \
        if r is not None and bootstrap_seed is not None else None
    return {"r": r, "ci": ci, "g": gs, "l": ls}


def readout_kind(ctx: EvalContext, lm: LocalMaps) -> str:
    """What G is: `mean` (of the local map: CNNs), or a ViT's readout `cls` / `avg`."""
    return "mean" if lm.readout is None else ctx.encoder.readout


GLOBALS = {"mean": "the mean of the local map", "avg": "the ViT's avg readout (mean of the patch tokens, through "
           "fc_norm where the model has one)", "cls": "the ViT's CLS token after the final norm"}
NULL_G = {"mean": "G = their mean", "avg": "G = the avg readout of them",
          "cls": "each image keeps its own CLS token: it is not computed from the final patch tokens"}


@torch.no_grad()
def null_globals(ctx: EvalContext, lm: LocalMaps, null: torch.Tensor) -> torch.Tensor:
    """G `(N, C)` float32 of the null maps `(N, C, h, w)`: recomputed from them as the readout
    computes G from the locals (the mean; a ViT's avg through its fc_norm); a CLS readout is not a
    function of the final patch tokens, so each image keeps its own (PROTOCOLS 12, 13)."""
    kind = readout_kind(ctx, lm)
    if kind == "mean":
        return null.mean(dim=(2, 3), dtype=torch.float32)
    if kind == "cls":
        return lm.readout.float().to(null.device)
    return ctx.encoder.pool_map(null.float()).float()


def _pairs(ctx: EvalContext, lm: LocalMaps, protocol: RedundancyProtocol) -> dict[str, Any]:
    device = ctx.device
    maps, glob = lm.maps.to(device), lm.global_features.to(device)
    n = len(maps)
    g = torch.Generator().manual_seed(protocol.seed)  # every draw on the CPU: the same pairs on any device
    real = pairs_correlation(maps, protocol, g, protocol.seed + 1, globals_=glob)
    gs, ls, r, ci = real["g"], real["l"], real["r"], real["ci"]
    keep = torch.randperm(len(gs), generator=g)[:protocol.scatter_points].to(device)
    # chance level (PROTOCOLS 12): the same N, P, S and map size on locals drawn from other images
    g_null = torch.Generator().manual_seed(protocol.seed + 4)
    shuffled = null_maps(maps, g_null)
    null = pairs_correlation(shuffled, protocol, g_null, protocol.seed + 5, globals_=null_globals(ctx, lm, shuffled))
    kind = readout_kind(ctx, lm)
    return {"pearson_r": r, "ci95": list(ci) if ci else None, "n_pairs": len(gs), "n_images": n,
            "r_null": null["r"], "r_null_ci95": list(null["ci"]) if null["ci"] else None,
            "r_minus_null": None if r is None or null["r"] is None else r - null["r"],
            "global": kind, "global_is": GLOBALS[kind],
            "null": "each image's local vectors replaced by other images' local vectors at the same positions "
                    f"({NULL_G[kind]}); same N, P, S and map size",
            "map_size": list(lm.maps.shape[2:]), "layer": lm.layer,
            "g_mean": float(gs.mean()), "g_std": float(gs.std()), "l_mean": float(ls.mean()), "l_std": float(ls.std()),
            "points": {"g": [round(v, 4) for v in gs[keep].tolist()], "l": [round(v, 4) for v in ls[keep].tolist()]}}


def _similarity(ctx: EvalContext, lm: LocalMaps, protocol: RedundancyProtocol) -> dict[str, Any]:
    device = ctx.device
    intra, to_global = within_image_similarities(*_on_device(lm, device))
    shuffled = null_maps(lm.maps.to(device), torch.Generator().manual_seed(protocol.seed + 4))
    intra_null, to_global_null = within_image_similarities(unit_locals(shuffled), null_globals(ctx, lm, shuffled))
    return {"intra_image": summary(intra, protocol.bootstrap, protocol.seed + 2) if intra is not None else None,
            "local_to_global": summary(to_global, protocol.bootstrap, protocol.seed + 3),
            "intra_image_null": float(intra_null.mean()) if intra_null is not None else None,
            "local_to_global_null": float(to_global_null.mean()),
            "n_images": len(to_global), "map_size": list(lm.maps.shape[2:]), "layer": lm.layer,
            "global": readout_kind(ctx, lm),
            **({} if intra is not None else {"note": "a 1x1 map has no pair of distinct positions"})}


@torch.no_grad()
def _part(ctx: EvalContext, lm: LocalMaps, protocol: RedundancyProtocol, which: str) -> dict[str, Any]:
    maps, labels = lm.maps, lm.labels
    n, c, h, w = maps.shape
    base = {"n": n, "layer": lm.layer, "map_size": [h, w]}
    if ctx.probe is None or lm.layer != ctx.encoder.local_layer or ctx.probe.mean.shape[0] != c:
        return {**base, "accuracy": None, "global_accuracy": None,
                "note": f"the probe reads {ctx.encoder.local_layer} global features; no single-vector probe at {lm.layer}"}
    device = ctx.probe.mean.device

    def acc_of(vectors: torch.Tensor) -> float:
        return accuracy(ctx.probe(vectors.to(device).float()).cpu(), labels)

    base["global_accuracy"] = acc_of(lm.global_features)
    flat = maps.flatten(2)  # (N, C, K)
    if which == "centre":
        y, x = centre_index(h), centre_index(w)
        return {**base, "accuracy": acc_of(flat[:, :, y * w + x]), "position": [y, x]}
    accs = []
    rows = torch.arange(n)
    for r in range(protocol.repeats):
        pos = torch.tensor([int(torch.randint(h * w, (1,), generator=per_image_generator(protocol.seed, r, int(idx))))
                            for idx in lm.indices.tolist()])
        accs.append(acc_of(flat[rows, :, pos]))
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else 0.0
    return {**base, "accuracy": mean, "std": std, "accuracies": accs, "repeats": protocol.repeats}


def run_cell(ctx: EvalContext, protocol: RedundancyProtocol, key: str) -> dict[str, Any]:
    lm = _maps(ctx, protocol)
    if key == "pairs":
        return _pairs(ctx, lm, protocol)
    if key == "similarity":
        return _similarity(ctx, lm, protocol)
    if key in ("part=centre", "part=random"):
        return _part(ctx, lm, protocol, key.split("=")[1])
    raise UserError(f"unknown redundancy cell {key!r}; cells are: {', '.join(CELLS)}")
