"""The linear probe on problems with known answers."""

from __future__ import annotations

import pytest
import torch

from coanalysis.features.extraction import Features
from coanalysis.models.trainer import UserError
from coanalysis.probes.linear import LinearProbe, ProbeProtocol, fit_probe, probe_accuracy


def _clusters(n_per_class: int, classes: int, dim: int, spread: float, seed: int) -> Features:
    g = torch.Generator().manual_seed(seed)
    centres = 5 * torch.eye(classes, dim)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    return Features(x, labels)


def test_separable_problem_is_solved():
    train, test = _clusters(50, 4, 16, 0.5, 0), _clusters(30, 4, 16, 0.5, 1)
    probe, report = fit_probe(train, 4)
    assert probe_accuracy(probe, test) == 1.0
    assert report["train_accuracy"] == 1.0
    assert report["weight_decay"] in ProbeProtocol().weight_decays


def test_chance_when_features_carry_no_label_information():
    g = torch.Generator().manual_seed(0)
    train = Features(torch.randn(400, 8, generator=g), torch.randint(0, 2, (400,), generator=g))
    test = Features(torch.randn(2000, 8, generator=g), torch.randint(0, 2, (2000,), generator=g))
    probe, _ = fit_probe(train, 2)
    assert abs(probe_accuracy(probe, test) - 0.5) < 0.05


def test_probe_is_standardized_linear():
    probe = LinearProbe(3, 2)
    probe.mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    probe.std.copy_(torch.tensor([2.0, 2.0, 2.0]))
    x = torch.randn(4, 3)
    torch.testing.assert_close(probe(x), probe.linear((x - probe.mean) / 2))


def test_too_few_labelled_examples():
    with pytest.raises(UserError, match="labelled training images"):
        fit_probe(Features(torch.randn(3, 4), torch.tensor([0, 1, 2])), 10)


def test_sgd_solver_solves_the_separable_problem_too():
    train, test = _clusters(50, 4, 16, 0.5, 0), _clusters(30, 4, 16, 0.5, 1)
    probe, report = fit_probe(train, 4, ProbeProtocol(solver="sgd", sgd_epochs=10, sgd_batch_size=64))
    assert report["solver"] == "sgd" and probe_accuracy(probe, test) == 1.0


def test_solvers_agree_on_a_noisy_problem():
    """Overlapping classes: both solvers reach the same held-out accuracy within 3 points."""
    train, test = _clusters(200, 4, 16, 3.0, 0), _clusters(300, 4, 16, 3.0, 1)
    lbfgs, _ = fit_probe(train, 4, ProbeProtocol(solver="lbfgs", weight_decays=(0.0, 1e-2)))
    sgd, _ = fit_probe(train, 4, ProbeProtocol(solver="sgd", weight_decays=(0.0, 1e-2), sgd_epochs=10,
                                                sgd_batch_size=200))
    a, b = probe_accuracy(lbfgs, test), probe_accuracy(sgd, test)
    assert 0.4 < a < 1.0 and abs(a - b) < 0.03


def test_auto_solver_switches_to_sgd_for_large_problems():
    from coanalysis.probes.linear import LBFGS_LIMIT

    assert ProbeProtocol().resolve_solver(50_000, 10) == "lbfgs"
    assert ProbeProtocol().resolve_solver(1_281_167, 1000) == "sgd" and 1_281_167 * 1000 > LBFGS_LIMIT
    with pytest.raises(UserError, match="unknown probe solver"):
        ProbeProtocol(solver="adam")


def test_ensure_probe_reuses_the_probe_recomputes_knn_alone_and_refits_a_damaged_probe(tiny_runs, tmp_path,
                                                                                      capsys):
    from coanalysis.probes.knn import KNNProtocol
    from coanalysis.run.pipeline import Session, ensure_probe, eval_data, open_model

    session = Session(out=tmp_path / "res", dataset="synthetic", n=32, n_train=64, device_name="cpu",
                      progress=True, cache_dir=tmp_path / "cache")
    encoder = open_model(session, str(tiny_runs["byol"]), "byol")
    test = eval_data(session, encoder)
    _, identity, acc = ensure_probe(session, encoder, test)
    cell = session.store.load("byol", "probe").cells["test:n=32:seed=0"]
    assert set(cell["knn"]) == {"k=20", "k=200"} and identity["encoder"]["format"] == "co-ssl-run"
    assert "fitting the linear probe" in capsys.readouterr().out

    session.knn = KNNProtocol(ks=(5,), temperature=0.1)
    _, _, again = ensure_probe(session, encoder, test)
    cell = session.store.load("byol", "probe").cells["test:n=32:seed=0"]
    assert again == acc and set(cell["knn"]) == {"k=5"} and cell["knn_protocol"]["temperature"] == 0.1
    assert "fitting the linear probe" not in capsys.readouterr().out  # the probe was reused

    (tmp_path / "res" / "byol" / "probe.safetensors").write_bytes(b"damaged")
    _, _, refit = ensure_probe(session, encoder, test)
    assert refit == acc and "fitting the linear probe" in capsys.readouterr().out
    from coanalysis.probes.linear import load_probe
    assert load_probe(tmp_path / "res" / "byol") is not None  # saved again
