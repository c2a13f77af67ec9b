"""Representation similarity and collapse: linear and minibatch CKA, RankMe, local-vs-global rank.

- `linear_cka(X, Y)` (Kornblith et al. 2019): `||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)` on
  column-centred `(n, d)` features, float64; 1 for X = Y and for Y = X Q with Q orthogonal.
- `MinibatchCKA` (Nguyen et al. 2021, as pytorch-cka computes it): the unbiased HSIC estimator
  of linear-kernel Grams summed over minibatches of the same images, CKA = sum HSIC(K, L) /
  sqrt(sum HSIC(K, K) sum HSIC(L, L)); every pair of layers of two models in one pass. The HSIC
  terms come from `cka.hsic` of the pytorch-cka package; this module is its only caller.
- `rankme(Z)` (Garrido et al. 2023): `exp(entropy(p))` with `p_k = s_k / sum s + eps` of the
  singular values of `Z` `(n, d)`; equals d for a d x d identity.

Features of a layer are its local map averaged over positions `(N, C)`; the local effective rank
takes the individual local vectors of the last map `(N h w, C)` (a seeded subsample of rows).
Under torchrun (`split`, `coanalysis.distributed.image_split`) every rank extracts a run of whole batches of
the images; the pooled features are joined in order and each rank sends only the sampled local
vectors it holds, so rank 0 gets exactly a single process's features and sample.
"""

from __future__ import annotations

from typing import Sequence

import torch

from coanalysis.distributed.image_split import ImageSplit

EPS = 1e-7  # RankMe's epsilon (Garrido et al.)


def _centred(x: torch.Tensor) -> torch.Tensor:
    x = x.double().flatten(1)
    return x - x.mean(dim=0, keepdim=True)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of `(n, d1)` and `(n, d2)` features of the same n images."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same images: {x.shape[0]} and {y.shape[0]} rows")
    xc, yc = _centred(x), _centred(y)
    cross = (yc.T @ xc).square().sum()
    norm = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return float(cross / norm) if norm > 0 else 0.0


class MinibatchCKA:
    """Unbiased minibatch CKA between every layer of A and every layer of B; feed batches with `update`."""

    def __init__(self, n_a: int, n_b: int):
        self.xy = torch.zeros(n_a, n_b, dtype=torch.float64)
        self.xx = torch.zeros(n_a, dtype=torch.float64)
        self.yy = torch.zeros(n_b, dtype=torch.float64)
        self.batches = 0

    def update(self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]) -> None:
        """One minibatch: per layer `(B, d)` features of the same B > 3 images."""
        from cka import hsic

        grams = [torch.stack([f.double().flatten(1) @ f.double().flatten(1).T for f in feats])
                 for feats in (feats_a, feats_b)]
        xy, xx, yy = hsic(grams[0], grams[1])
        self.xy += xy.cpu()
        self.xx += xx.cpu()
        self.yy += yy.cpu()
        self.batches += 1

    def value(self) -> list[list[float]]:
        denom = (self.xx.clamp(min=0).unsqueeze(1) * self.yy.clamp(min=0).unsqueeze(0)).sqrt()
        out = torch.where(denom > 0, self.xy / denom.clamp(min=1e-300), torch.zeros_like(self.xy))
        return out.tolist()


def rankme(z: torch.Tensor) -> float:
    """RankMe effective rank of `(n, d)` embeddings."""
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum().clamp(min=1e-300) + EPS
    return float(torch.exp(-(p * p.log()).sum()))


def sample_local_vectors(maps: torch.Tensor, rows: int, seed: int, split: ImageSplit = ImageSplit()) -> torch.Tensor:
    """At most `rows` local vectors `(rows, C)` drawn without replacement from maps `(N, C, h, w)`.
    Split, `maps` are this rank's images (rows of the whole `N` in rank order, maybe none): the
    vectors of every rank's maps, drawn as from their concatenation, on every rank."""
    if split.whole:
        vectors = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
        if len(vectors) <= rows:
            return vectors
        g = torch.Generator().manual_seed(seed)
        return vectors[torch.randperm(len(vectors), generator=g)[:rows]]
    shapes = split.join(torch.tensor([list(maps.shape) if maps.numel() else [0, 0, 0, 0]]))  # (world, 4)
    n, (c, h, w) = int(shapes[:, 0].sum()), next(s[1:].tolist() for s in shapes if s[0] > 0)
    total = n * h * w
    chosen = torch.arange(total) if total <= rows else \
        torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:rows]
    start = int(shapes[:split.rank, 0].sum()) * h * w
    mine = torch.nonzero((chosen >= start) & (chosen < start + len(maps) * h * w)).flatten()
    vectors = maps.permute(0, 2, 3, 1).reshape(-1, c)[chosen[mine] - start] if len(mine) \
        else torch.zeros(0, c, dtype=maps.dtype)
    places = split.join(mine)  # where in the draw each rank's vectors go
    out = torch.empty(len(chosen), c, dtype=maps.dtype)
    out[places] = split.join(vectors)
    return out


@torch.no_grad()
def layer_features(encoder, data, layers: Sequence[str], *, device: torch.device, batch_size: int,
                   precision: str, workers: int = 0,
                   split: ImageSplit = ImageSplit()) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """({layer: pooled features (N, C) float32}, last layer's maps (N, C, h, w) float16, dataset positions (N,))
    of the decodable images of `data`, in its order. Split, each rank extracts its rows; the pooled
    features and positions are every rank's, joined, the maps this rank's alone (see
    `sample_local_vectors`)."""
    from coanalysis.features.extraction import to_input
    from coanalysis.models.trainer import autocast

    empty = torch.zeros(0)
    pooled: dict[str, list[torch.Tensor]] = {layer: [empty] for layer in layers}
    last, positions = [empty.half()], [torch.zeros(0, dtype=torch.long)]
    for images, _, pos in data.batches(batch_size, workers, split.rows(len(data), batch_size)):
        x = to_input(images, device)
        with autocast(device, precision):
            maps = encoder.forward_maps(x, layers)
        for layer, m in zip(layers, maps):
            pooled[layer].append(m.float().mean(dim=(2, 3)).cpu())
        last.append(maps[-1].half().cpu())
        positions.append(pos)
    return ({k: split.join(torch.cat(v)) for k, v in pooled.items()}, torch.cat(last),
            split.join(torch.cat(positions)))


def cka_matrices(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], batch: int) -> dict[str, list[list[float]]]:
    """Linear (full-batch) and unbiased minibatch CKA between every layer of `a` and of `b` (same rows)."""
    la, lb = list(a), list(b)
    n = len(next(iter(a.values())))
    acc = MinibatchCKA(len(la), len(lb))
    for start in range(0, n - 3, batch):
        rows = slice(start, min(start + batch, n))
        if rows.stop - rows.start > 3:  # the unbiased estimator needs more than 3 images
            acc.update([a[k][rows] for k in la], [b[k][rows] for k in lb])
    return {"linear": [[linear_cka(a[i], b[j]) for j in lb] for i in la], "unbiased": acc.value()}
