"""A BagSSL run is read through its recorded bag of patches in every analysis (coanalysis.readout)."""

from __future__ import annotations

import pytest
import torch

from co_ssl_train.config import TrainConfig
from co_ssl_train.methods.bagssl import bag_of_patches
from co_ssl_train.train import train
from coanalysis.features import to_input
from coanalysis.loading import load_encoder
from coanalysis.pipeline import Session, make_context, open_model
from coanalysis.readout import BagOfPatchesEncoder
from coanalysis.trainer import UserError
from tests.conftest import TINY


@pytest.fixture(scope="module")
def bag_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bag")
    return train(TrainConfig(**{**TINY, "width": 4, "batch_size": 16, "subset": 32, "max_steps": 1},
                             method="bagssl", patches=3, out=str(out), run_name="bag"))


def test_a_bagssl_run_is_read_through_its_bag(bag_run):
    encoder = load_encoder(bag_run)
    assert isinstance(encoder, BagOfPatchesEncoder)
    assert encoder.source.readout == {"kind": "bag-of-patches", "patch_size": 16, "stride": 8, "feed": "native",
                                      "source": "meta.json representation"}
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert encoder.forward_local(x).shape == (3, encoder.num_features, 3, 3)  # 3x3 patches at stride 8
        torch.testing.assert_close(encoder.forward_global(x), bag_of_patches(encoder.plain, x, 16))
    plain = load_encoder(bag_run, readout="global")
    assert not isinstance(plain, BagOfPatchesEncoder) and plain.source.readout["kind"] == "global-average"
    assert "readout" in encoder.source.loading() and "readout" not in plain.source.loading()
    # PGD attacks the bag: the readout is differentiable
    x.requires_grad_(True)
    encoder.forward_global(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_probe_accuracy_equals_the_trainers_bag_readout(bag_run, tmp_path):
    session = Session(out=tmp_path / "res", progress=False, batch_size=64, n=64, n_train=64,
                      cache_dir=tmp_path / "cache")
    ctx = make_context(session, open_model(session, str(bag_run), "bag"))
    images, labels = [], []
    for x, y, _ in ctx.data.batches(64):
        images.append(x)
        labels.append(y)
    x, y = to_input(torch.cat(images), ctx.device), torch.cat(labels)
    with torch.no_grad():
        trainer_features = bag_of_patches(ctx.encoder.plain, x, 16)  # the trainer's own readout
        expected = int((ctx.probe(trainer_features).argmax(1) == y).sum()) / len(y)
    assert ctx.clean_accuracy == expected
    assert ctx.accuracy() == (expected, 64)  # the analyses' images path reads the bag too
    probe = session.store.load("bag", "probe")
    assert probe.model["readout"]["kind"] == "bag-of-patches"


def test_bag_readout_needs_a_bag_checkpoint(tiny_runs):
    with pytest.raises(UserError, match="bag-of-patches"):
        load_encoder(tiny_runs["byol"], readout="bag")
    assert load_encoder(tiny_runs["byol"]).source.readout["kind"] == "global-average"


def test_bagssl_analysis_defaults_match_the_trainers_readout(bag_run, tmp_path):
    from coanalysis.analyses.bagssl import readout_protocol, run_cell

    session = Session(out=tmp_path / "res", progress=False, batch_size=64, n=64, n_train=64,
                      cache_dir=tmp_path / "cache")
    ctx = make_context(session, open_model(session, str(bag_run), "bag"))
    protocol = readout_protocol(ctx.encoder.source.readout, 32, n_images=64)
    assert (protocol.patch_sizes[0], protocol.sampling, protocol.feed) == (16, "stride", "native")
    cell = run_cell(ctx, protocol, "patch=16")
    assert cell["grid_offsets"] == [0, 8, 16] and cell["patches_per_image"] == 9
    # the analysis's bag at the trainer's grid is the readout every other analysis uses
    assert cell["bag_accuracy"] == ctx.clean_accuracy
    assert cell["readout"]["kind"] == "bag-of-patches"
    assert readout_protocol(None, 32).sampling == "grid"
