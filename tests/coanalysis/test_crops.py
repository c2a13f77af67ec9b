"""Crop scale: s = 1 is the clean accuracy, and each crop is the seeded region resized back."""

from __future__ import annotations

import torch

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.crops import CropProtocol, crop_side, random_crops
from coanalysis.run.pipeline import run_analysis
from coanalysis.data.seeding import per_image_generator
from tests.coanalysis.probed import probed_context


def test_full_scale_equals_clean_accuracy(tiny_runs, tmp_path):
    session, ctx = probed_context(tiny_runs, "byol", tmp_path / "res")
    result = run_analysis(session, ctx, ANALYSES["crops"], CropProtocol(scales=(1.0, 0.25)))
    assert result.cells["scale=1"]["accuracy"] == ctx.clean_accuracy and result.cells["scale=1"]["n"] == 256
    assert result.cells["scale=0.25"]["crop_side"] == 16 and result.cells["scale=0.25"]["image_size"] == 32


def test_random_crop_is_the_seeded_region_resized_back():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) / 383
    positions = torch.tensor([3, 9])
    out = random_crops(x, 0.25, 0, positions)
    for row, pos in enumerate(positions.tolist()):
        g = per_image_generator(0, 250_000, pos)
        top, left = int(torch.randint(0, 5, (1,), generator=g)), int(torch.randint(0, 5, (1,), generator=g))
        crop = x[row:row + 1, :, top:top + 4, left:left + 4]
        expected = torch.nn.functional.interpolate(crop, size=(8, 8), mode="bilinear", align_corners=False)
        assert torch.equal(out[row:row + 1], expected.clamp(0, 1))
    halves = torch.cat([random_crops(x[:1], 0.25, 0, positions[:1]), random_crops(x[1:], 0.25, 0, positions[1:])])
    assert torch.equal(out, halves)
    assert random_crops(x, 1.0, 0, positions) is x
    assert [crop_side(s, 32) for s in (1.0, 0.5, 0.25, 0.1)] == [32, 23, 16, 10]
