"""Every analysis on a ViT: unchanged conditions equal the clean accuracy (token dropout p = 0,
sigma = 0, epsilon = 0), token dropout follows PROTOCOLS 13, G is the readout, the ERF bound is
the image."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coanalysis.results import stats
from coanalysis.analyses import ANALYSES
from coanalysis.analyses.dropout import SINGLE, DropoutProtocol
from coanalysis.analyses.erf import ERFProtocol
from coanalysis.analyses.noise import NoiseProtocol
from coanalysis.analyses.pgd import PGDProtocol
from coanalysis.analyses.redundancy import RedundancyProtocol, sample_pairs
from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
from tests.coanalysis import vit_layouts


def _context(path, out, **load):
    session = Session(out=out, dataset="synthetic", n=64, n_train=256, progress=False, batch_size=32,
                      load_options={"dino_vit": load} if load else {})
    return session, make_context(session, open_model(session, str(path), "dino_vit"))


@pytest.fixture(scope="module")
def cls_context(dino_file, tmp_path_factory):
    """(session, context) of the DINO ViT with its own CLS readout; the probe is fitted once."""
    return _context(dino_file, tmp_path_factory.mktemp("res"))


@pytest.mark.parametrize("readout", ["cls", pytest.param("avg", marks=pytest.mark.slow)])
def test_unchanged_conditions_equal_clean_accuracy(dino_file, cls_context, tmp_path, readout):
    session, ctx = cls_context if readout == "cls" else _context(dino_file, tmp_path / "res", global_readout=readout)
    assert ctx.encoder.readout == readout
    protocol = DropoutProtocol(spatial_ps=(0.0, 0.5, SINGLE), channel_ps=(0.0, 0.5), noise_alphas=(0.0, 1.0), masks=2)
    result = run_analysis(session, ctx, ANALYSES["dropout"], protocol)
    for key in ("spatial p=0", "channel p=0", "noise alpha=0"):
        assert result.cells[key]["accuracies"] == [ctx.clean_accuracy] * 2, key
    single = result.cells[f"spatial p={SINGLE}"]
    assert single["positions"] == 16 and single["kept_positions"] == 1 and single["family"] == "vit"
    assert ("last block" in single["corrupted"]) == (readout == "cls")
    # every cell carries its per-image record, one row per mask (PROTOCOLS 11): counts match
    for cell in result.cells.values():
        rows = stats.cell_correctness(cell)
        assert rows.shape == (2, cell["n"]) and list(rows.mean(axis=1)) == pytest.approx(cell["accuracies"])
        assert cell["interval"][0] <= cell["accuracy"] <= cell["interval"][1]
    noise = run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0, 0.2)))
    assert noise.cells["sigma=0"]["accuracy"] == ctx.clean_accuracy
    if readout == "cls":
        pgd = run_analysis(session, ctx, ANALYSES["pgd"], PGDProtocol(linf_eps=(0.0, 2 / 255), l2_eps=(), steps=2))
        assert pgd.cells["linf eps=0"]["accuracy"] == ctx.clean_accuracy
        assert pgd.cells["linf eps=2/255"]["max_perturbation"] <= 2 / 255 + 1e-6


def test_token_dropout_keeps_the_class_token_and_drops_patches(cls_context):
    """At p = 1 - 1/hw the CLS attends to itself and one patch: the readout equals an explicit
    attention mask on the last block."""
    _, ctx = cls_context
    from coanalysis.analyses.token_dropout import token_state

    state = token_state(ctx)
    assert state.prefix.shape[1] == 1 and state.maps.shape[2:] == (4, 4)
    enc = ctx.encoder
    tokens = torch.cat([state.prefix[:2], state.maps[:2].flatten(2).transpose(1, 2)], 1)
    keep = torch.tensor([[3], [7]])
    with torch.no_grad():
        one = enc.readout_tokens(tokens, keep)
        mask = torch.zeros(2, 1, 17, 17, dtype=torch.bool)
        mask[:, :, :, 0] = True
        mask[0, :, :, 4] = mask[1, :, :, 8] = True
        ref = enc.backbone.norm(enc.backbone.blocks[-1](tokens, attn_mask=mask))[:, 0]
    torch.testing.assert_close(one, ref, rtol=1e-5, atol=1e-5)


def test_redundancy_uses_the_readout_and_erf_bound_is_the_image(cls_context):
    session, ctx = cls_context
    lm = ctx.local_maps(16)
    x = torch.stack([ctx.data.dataset[int(i)][0] for i in lm.indices]).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(lm.global_features, ctx.encoder.forward_global(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lm.global_features, lm.maps.float().mean(dim=(2, 3)))
    red = run_analysis(session, ctx, ANALYSES["redundancy"], RedundancyProtocol(n_images=16, n_pairs=50, bootstrap=20))
    assert red.cells["pairs"]["map_size"] == [4, 4] and red.cells["part=centre"]["accuracy"] is not None
    assert red.cells["pairs"]["global"] == red.cells["similarity"]["global"] == "cls"
    i, j = sample_pairs(16, 50, torch.Generator().manual_seed(0))  # the analysis' own pairs (seed 0)

    def g_mean(glob):
        return float(F.cosine_similarity(glob[i], glob[j], dim=1).mean())

    assert red.cells["pairs"]["g_mean"] == pytest.approx(g_mean(lm.global_features), abs=1e-5)
    assert red.cells["pairs"]["g_mean"] != pytest.approx(g_mean(lm.maps.float().mean((2, 3))), abs=1e-4)
    erf = run_analysis(session, ctx, ANALYSES["erf"], ERFProtocol(n_images=2, coords=((0.5, 0.5),)))
    cell = next(iter(erf.cells.values()))
    assert cell["rf_bound"] == "image" and cell["analytic_rf"] is None and cell["map_size"] == [4, 4]


def test_bagssl_on_a_vit_reads_patches_as_timm_does(dino_file):
    """A patch the size of the image is the image: bag readout = global readout. Smaller patches,
    resized to the input size, give timm's own CLS on the resized patches (PROTOCOLS 10, 13)."""
    from coanalysis.analyses.bagssl import BagSSLProtocol, run_cell
    from coanalysis.models.loading import load_encoder
    from coanalysis.features.local_maps import subset
    from tests.coanalysis.analysis_encoders import context

    _, model, _ = vit_layouts.dino_full()
    ctx = context(load_encoder(dino_file))
    protocol = BagSSLProtocol(patch_sizes=(32, 16), n_images=16, bootstrap=20)
    whole = run_cell(ctx, protocol, "patch=32")
    assert whole["patches_per_image"] == 1 and whole["readout"]["kind"] == "global-average"
    assert whole["cos_whole_bag"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert whole["bag_accuracy"] == whole["global_accuracy"] == whole["patch_accuracy"]
    quarter = run_cell(ctx, protocol, "patch=16")
    assert quarter["patches_per_image"] == 4 and quarter["grid_offsets"] == [0, 16]
    data = subset(ctx.data, 16)
    x = torch.stack([data.dataset[int(i)][0] for i in data.indices]).float() / 255
    crops = [x[:, :, r:r + 16, c:c + 16] for r in (0, 16) for c in (0, 16)]
    resized = [F.interpolate(p, size=(32, 32), mode="bilinear", align_corners=False) for p in crops]
    bag = torch.stack([vit_layouts.tokens(model, p)[:, 0] for p in resized]).mean(0)
    expected = F.cosine_similarity(vit_layouts.tokens(model, x)[:, 0], bag, dim=1).mean()
    assert quarter["cos_whole_bag"]["mean"] == pytest.approx(float(expected), abs=1e-5)
    assert quarter["cos_whole_bag"]["mean"] < 0.999  # the parts are not the whole
