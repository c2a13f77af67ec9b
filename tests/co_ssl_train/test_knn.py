"""The kNN monitor against hand-computed votes."""

from __future__ import annotations

import math

import torch

from co_ssl_train.knn import knn_accuracy, knn_predict, seeded_indices


def test_weighted_vote_by_hand():
    # query [1, 0]; bank: two class-0 vectors at cos 0.6 and 0.0, one class-1 vector at cos 0.8.
    bank = torch.tensor([[0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[1.0, 0.0]])
    # k = 2: neighbours cos 0.8 (class 1) and 0.6 (class 0): class 1 wins
    assert knn_predict(bank, labels, q, k=2, temperature=0.07, num_classes=2).tolist() == [1]
    # k = 3 with a high temperature: weights exp(0.6/T) + exp(0/T) vs exp(0.8/T)
    t = 10.0
    assert math.exp(0.6 / t) + math.exp(0.0) > math.exp(0.8 / t)
    assert knn_predict(bank, labels, q, k=3, temperature=t, num_classes=2).tolist() == [0]


def test_separable_clusters_give_full_accuracy_and_shuffled_labels_do_not():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    labels = torch.arange(400) % 4
    feats = centres[labels] + 0.1 * torch.randn(400, 16, generator=g)
    assert knn_accuracy(feats[:300], labels[:300], feats[300:], labels[300:], k=20) == 1.0
    shuffled = labels[:300][torch.randperm(300, generator=g)]
    assert knn_accuracy(feats[:300], shuffled, feats[300:], labels[300:], k=20) < 0.6


def test_seeded_indices_are_fixed_and_bounded():
    assert torch.equal(seeded_indices(100, 10, 3), seeded_indices(100, 10, 3))
    assert len(seeded_indices(5, 10, 3)) == 5
