"""The weighted kNN readout (PROTOCOLS.md section 2): cosine similarity on frozen global features.

As in Wu et al. (InstDisc, 2018) and DINO's `eval_knn.py`: features are L2-normalized; for each
test image the k most similar training images vote for their labels with weight
`exp(cos / T)`; the class with the largest summed weight wins. Defaults k = 20 and 200,
T = 0.07. The vote is the trainer's kNN monitor's own (`knn_vote`, through `coanalysis.models.trainer`):
all k are answered from one top-k search, test images in chunks of `chunk_size`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from coanalysis.features.extraction import Features
from coanalysis.models.trainer import UserError, knn_vote


@dataclass(frozen=True)
class KNNProtocol:
    """How the kNN readout is computed; recorded with its accuracies."""

    ks: tuple[int, ...] = (20, 200)
    temperature: float = 0.07
    chunk_size: int = 1024  # test images per similarity block (memory only, not the result)

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise UserError(f"kNN k must be at least 1, got {list(self.ks)}")
        if not self.temperature > 0:
            raise UserError(f"kNN temperature must be > 0, got {self.temperature}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("chunk_size")
        return {**data, "ks": list(self.ks), "similarity": "cosine", "vote": "sum of exp(cos / T) per class"}


def knn_correctness(train: Features, test: Features, num_classes: int, protocol: KNNProtocol = KNNProtocol(),
                    device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-image correctness `(M,)` bool of the labelled test images, per k, keyed "k=20", ..."""
    keep_train, keep_test = train.labels >= 0, test.labels >= 0
    if int(keep_train.sum()) == 0:
        raise UserError("the kNN readout needs labelled training images")
    preds = knn_vote(train.features[keep_train].to(device), train.labels[keep_train].to(device),
                     test.features[keep_test].to(device), num_classes, protocol.ks, protocol.temperature,
                     protocol.chunk_size)
    labels = test.labels[keep_test]
    return {f"k={k}": pred.cpu() == labels for k, pred in preds.items()}


def knn_accuracy(train: Features, test: Features, num_classes: int, protocol: KNNProtocol = KNNProtocol(),
                 device: torch.device | str = "cpu") -> dict[str, float]:
    """Top-1 accuracy per k, keyed "k=20", ... (labelled images only; correct / n)."""
    return {k: int(c.sum()) / max(len(c), 1)
            for k, c in knn_correctness(train, test, num_classes, protocol, device).items()}
