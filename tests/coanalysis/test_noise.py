"""Noise robustness: sigma = 0 is the clean accuracy, noise is per image, cells resume."""

from __future__ import annotations

import json

import pytest
import torch

from coanalysis.analyses import ANALYSES, Analysis
from coanalysis.analyses.noise import NoiseProtocol, add_noise
from coanalysis.models.trainer import UserError
from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
from coanalysis.results.store import Result


@pytest.fixture
def session(tmp_path):
    return Session(out=tmp_path / "results", progress=False, batch_size=64)


def test_sigma_zero_equals_clean_accuracy(session, tiny_runs):
    ctx = make_context(session, open_model(session, str(tiny_runs["byol"]), "byol"))
    result = run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0, 0.3)))
    assert result.cells["sigma=0"]["accuracy"] == ctx.clean_accuracy
    assert result.cells["sigma=0"]["n"] == 256 and result.complete


def test_noise_is_per_image_and_independent_of_batching():
    x = torch.rand(6, 3, 8, 8)
    pos = torch.arange(6)
    full = add_noise(x, 0.1, 0, 1, pos)
    halves = torch.cat([add_noise(x[:3], 0.1, 0, 1, pos[:3]), add_noise(x[3:], 0.1, 0, 1, pos[3:])])
    assert torch.equal(full, halves)
    assert full.min() >= 0 and full.max() <= 1
    assert not torch.equal(add_noise(x, 0.1, 0, 2, pos), full)  # another sigma, another stream
    assert add_noise(x, 0.0, 0, 0, pos) is x


def test_finished_cells_are_skipped_and_json_round_trips(session, tiny_runs):
    calls = []

    def counting(ctx, protocol, key):
        calls.append(key)
        return ANALYSES["noise"].run_cell(ctx, protocol, key)

    analysis = Analysis("noise", "noise", NoiseProtocol, ANALYSES["noise"].cells, counting, ("sigmas",))
    ctx = make_context(session, open_model(session, str(tiny_runs["byol"]), "byol"))
    first = run_analysis(session, ctx, analysis, NoiseProtocol(sigmas=(0.0, 0.1)))
    assert calls == ["sigma=0", "sigma=0.1"]
    again = run_analysis(session, ctx, analysis, NoiseProtocol(sigmas=(0.0, 0.1)))
    assert calls == ["sigma=0", "sigma=0.1"] and again.cells == first.cells
    path = session.store.path("byol", "noise")
    assert Result.from_json(json.loads(path.read_text())) == again
    # other sigmas add cells; the stored ones are kept and not recomputed
    extended = run_analysis(session, ctx, analysis, NoiseProtocol(sigmas=(0.1, 0.2)))
    assert calls == ["sigma=0", "sigma=0.1", "sigma=0.2"]
    assert list(extended.cells) == ["sigma=0", "sigma=0.1", "sigma=0.2"]
    assert extended.protocol["sigmas"] == [0.0, 0.1, 0.2] and extended.complete


def test_other_protocol_in_the_same_folder_is_refused(session, tiny_runs):
    ctx = make_context(session, open_model(session, str(tiny_runs["byol"]), "byol"))
    run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0,)))
    with pytest.raises(UserError, match="another protocol"):
        run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0,), seed=1))
