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


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, temperature: float,
                num_classes: int, chunk: int = 1024) -> torch.Tensor:
    """Predicted labels `(Q,)` for queries `(Q, D)` from bank `(N, D)` with labels `(N,)`."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start:start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (q, k)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


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
