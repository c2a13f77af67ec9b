"""The kNN monitor: weighted k-nearest-neighbour accuracy of frozen features during training.

Protocol (InstDisc / DINO, PROTOCOLS.md section 2): features l2-normalized; each query's k most
cosine-similar bank images vote for their labels with weight `exp(cos / T)`; the class with the
largest total wins. The bank is a seeded subset of the training split, the queries a seeded subset
of the held-out split; both fixed for the whole run, so epochs compare.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from co_ssl_train.data import AnyDataset, iterate_batches


@torch.no_grad()
def knn_vote(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
             ks: tuple[int, ...], temperature: float, chunk_size: int = 1024) -> dict[int, torch.Tensor]:
    """Predicted labels `(Q,)` of queries `(Q, D)` for each k, from bank `(N, D)` with labels `(N,)`.

    The one weighted kNN vote of the package (coanalysis's readout uses it too). All k are answered
    from one top-k search (the neighbours of k = 20 are the first 20 of k = 200); a k larger than N
    uses all N bank images. Queries go in chunks, so memory stays at `chunk_size x N` similarities.
    """
    bank = F.normalize(bank.float(), dim=1)
    labels = bank_labels.long()
    top = min(max(ks), len(labels))
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for start in range(0, len(queries), chunk_size):
        q = F.normalize(queries[start:start + chunk_size].float(), dim=1)
        sims, idx = (q @ bank.T).topk(top, dim=1)  # sorted, most similar first
        weights = (sims / temperature).exp()
        neighbour_labels = labels[idx]  # (q, top)
        for k in ks:
            used = min(k, top)
            votes = torch.zeros(len(q), num_classes, dtype=weights.dtype, device=weights.device)
            votes.scatter_add_(1, neighbour_labels[:, :used], weights[:, :used])  # (q, K) summed weights per class
            out[k].append(votes.argmax(dim=1))
    return {k: torch.cat(v) if v else torch.empty(0, dtype=torch.long) for k, v in out.items()}


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, temperature: float,
                num_classes: int, chunk: int = 1024) -> torch.Tensor:
    """Predicted labels `(Q,)` for queries `(Q, D)` from bank `(N, D)` with labels `(N,)` (`knn_vote` for one k)."""
    return knn_vote(bank, bank_labels, queries, num_classes, (k,), temperature, chunk)[k]


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, query_labels: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, num_classes: int | None = None) -> float:
    """Fraction of queries whose kNN prediction equals their label (images that did not decode,
    label < 0, are left out)."""
    keep_bank, keep_query = bank_labels >= 0, query_labels >= 0
    bank, bank_labels = bank[keep_bank.to(bank.device)], bank_labels[keep_bank]
    queries, query_labels = queries[keep_query.to(queries.device)], query_labels[keep_query]
    num_classes = num_classes or int(max(bank_labels.max(), query_labels.max())) + 1
    preds = knn_predict(bank, bank_labels.to(bank.device), queries.to(bank.device), k, temperature, num_classes)
    return float((preds == query_labels.to(preds.device)).float().mean())


def seeded_indices(n: int, count: int, seed: int) -> torch.Tensor:
    """`min(n, count)` sorted indices of a seeded permutation of range(n)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:count].sort().values


@torch.no_grad()
def embed(represent: Callable[[torch.Tensor], torch.Tensor], dataset: AnyDataset, indices: torch.Tensor,
          device: torch.device, batch_size: int = 256, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(features `(n, C)` on `device`, labels `(n,)`) of `dataset[indices]`; `represent` maps
    float images in [0, 1] `(B, 3, H, W)` to `(B, C)`."""
    feats, labels = [], []
    for images, y in iterate_batches(dataset, batch_size, indices=indices, workers=workers):
        feats.append(represent(images.to(device).float().div_(255)).float())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels).to(device)
