"""The weighted kNN readout against known answers and the InstDisc/DINO voting formula."""

from __future__ import annotations

import math

import pytest
import torch

from coanalysis.features.extraction import Features
from coanalysis.probes.knn import KNNProtocol, knn_accuracy
from coanalysis.models.trainer import knn_vote as knn_predict
from coanalysis.models.trainer import UserError


def _clusters(n_per_class: int, classes: int, dim: int, spread: float, seed: int) -> Features:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99))
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return Features(centres[labels] + spread * torch.randn(len(labels), dim, generator=g), labels)


def test_clustered_data_is_classified_perfectly():
    train, test = _clusters(60, 5, 32, 0.1, 0), _clusters(20, 5, 32, 0.1, 1)
    assert knn_accuracy(train, test, 5) == {"k=20": 1.0, "k=200": 1.0}


def test_noise_features_give_chance():
    g = torch.Generator().manual_seed(0)
    train = Features(torch.randn(2000, 16, generator=g), torch.randint(0, 4, (2000,), generator=g))
    test = Features(torch.randn(2000, 16, generator=g), torch.randint(0, 4, (2000,), generator=g))
    for acc in knn_accuracy(train, test, 4).values():
        assert abs(acc - 0.25) < 0.04


def test_weighted_vote_beats_majority_when_the_nearest_is_much_closer():
    """One very similar neighbour of class 0 outweighs two distant ones of class 1 at T = 0.07."""
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(train, labels, query, 2, (3,), 0.07)[3].item() == 0
    # at a high temperature the weights flatten and the majority (class 1) wins
    assert knn_predict(train, labels, query, 2, (3,), 100.0)[3].item() == 1
    assert knn_predict(train, labels, query, 2, (1,), 100.0)[1].item() == 0


def test_matches_the_reference_formula():
    g = torch.Generator().manual_seed(0)
    train, labels = torch.randn(50, 8, generator=g), torch.randint(0, 3, (50,), generator=g)
    queries = torch.randn(7, 8, generator=g)
    preds = knn_predict(train, labels, queries, 3, (1, 5, 20, 80), 0.07, chunk_size=3)
    for i, q in enumerate(queries):
        cos = [float(q @ t / (q.norm() * t.norm())) for t in train]
        order = sorted(range(50), key=lambda j: -cos[j])
        for k in (1, 5, 20, 80):
            votes = [0.0, 0.0, 0.0]
            for j in order[:k]:  # k = 80 > 50 uses all training images
                votes[int(labels[j])] += math.exp(cos[j] / 0.07)
            assert preds[k][i].item() == max(range(3), key=lambda c: votes[c])


def test_cosine_ignores_feature_scale_and_unlabelled_images():
    train, test = _clusters(30, 3, 16, 0.5, 2), _clusters(10, 3, 16, 0.5, 3)
    scaled = Features(train.features * torch.rand(len(train.labels), 1) * 10 + 0, train.labels)
    assert knn_accuracy(train, test, 3) == knn_accuracy(scaled, test, 3)
    marked = Features(torch.cat([test.features, torch.randn(5, 16)]), torch.cat([test.labels, torch.full((5,), -2)]))
    assert knn_accuracy(train, marked, 3) == knn_accuracy(train, test, 3)


def test_protocol_is_checked_and_recorded():
    assert KNNProtocol().to_json()["ks"] == [20, 200] and KNNProtocol().to_json()["temperature"] == 0.07
    with pytest.raises(UserError, match="at least 1"):
        KNNProtocol(ks=(0,))
    with pytest.raises(UserError, match="temperature"):
        KNNProtocol(temperature=0.0)
