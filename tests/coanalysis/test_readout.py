"""A BagSSL run is read through its recorded bag of patches in every analysis (coanalysis.models.readout)."""

from __future__ import annotations

import pytest
import torch

from co_ssl_train.config import TrainConfig
from co_ssl_train.methods.bagssl import bag_of_patches
from co_ssl_train.train import train
from coanalysis.features.extraction import to_input
from coanalysis.models.loading import load_encoder
from coanalysis.run.pipeline import Session, make_context, open_model
from coanalysis.models.readout import BagOfPatchesEncoder
from coanalysis.models.trainer import UserError
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


@pytest.fixture(scope="module")
def vit_bag_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vitbag")
    vit = dict(arch="vit_tiny", vit_patch_size=8, vit_dim=24, vit_depth=2, vit_heads=2)
    return train(TrainConfig(**{**TINY, "batch_size": 16, "subset": 32, "max_steps": 1, **vit}, method="bagssl",
                             patches=3, out=str(out), run_name="vitbag"))


def test_a_vit_bagssl_run_is_read_through_the_bag_of_its_cls_readouts(vit_bag_run):
    encoder = load_encoder(vit_bag_run)
    assert isinstance(encoder, BagOfPatchesEncoder) and encoder.plain.family == "vit"
    assert encoder.plain.readout == "cls" and encoder.source.family == "vit"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bag = encoder.forward_global(x)
        torch.testing.assert_close(bag, bag_of_patches(encoder.plain, x, 16))  # the trainer's own readout
        cls = torch.stack([encoder.plain.forward_global(x[:, :, r:r + 16, c:c + 16])
                           for r in (0, 8, 16) for c in (0, 8, 16)]).mean(0)  # 3x3 patches at stride 8
        torch.testing.assert_close(bag, cls)
        tokens_mean = torch.stack([encoder.plain.forward_local(x[:, :, r:r + 16, c:c + 16]).mean((2, 3))
                                   for r in (0, 8, 16) for c in (0, 8, 16)]).mean(0)
    assert not torch.allclose(bag, tokens_mean, atol=1e-3)  # the patch tokens' mean is not the readout


@pytest.mark.slow  # fits a probe through 9 patches per image: ~25 s on the shared 2-core CPU
def test_bagssl_analysis_on_a_vit_run_at_its_grid_is_its_readout(vit_bag_run, tmp_path):
    from coanalysis.analyses.bagssl import readout_protocol, run_cell

    session = Session(out=tmp_path / "res", progress=False, batch_size=64, n=64, n_train=64,
                      cache_dir=tmp_path / "cache")
    ctx = make_context(session, open_model(session, str(vit_bag_run), "vitbag"))
    cell = run_cell(ctx, readout_protocol(ctx.encoder.source.readout, 32, n_images=64), "patch=16")
    assert cell["patches_per_image"] == 9 and cell["bag_accuracy"] == ctx.clean_accuracy
