"""The ViT encoder (co_ssl_train/models/vit.py) against timm's own VisionTransformer forward."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from co_ssl_train.checkpoint import RunMeta, load_run_encoder, save_run
from co_ssl_train.errors import UserError
from co_ssl_train.models import ARCHS, build_encoder

TINY = {"patch_size": 8, "img_size": 32, "embed_dim": 64, "depth": 2, "num_heads": 2}


def _reference(encoder, x: torch.Tensor) -> torch.Tensor:
    """timm's forward_features of the same module (tokens after the final norm, prefix included)."""
    return VisionTransformer.forward_features(encoder.backbone, encoder.normalize(x))


@pytest.mark.parametrize("kwargs", [{}, {"reg_tokens": 4, "init_values": 1e-5}, {"no_embed_class": True, "reg_tokens": 2},
                                    {"class_token": False}, {"fc_norm": True, "readout": "avg"},
                                    {"mlp": "swiglu", "mlp_ratio": 2.0}])
def test_local_and_global_equal_timm_forward(kwargs):
    torch.manual_seed(0)
    enc = build_encoder("vit", {**TINY, **kwargs}).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        tokens = _reference(enc, x)
        prefix = enc.backbone.num_prefix_tokens
        local = enc.forward_local(x)
        glob = enc.forward_global(x)
    assert local.shape == (3, 64, 4, 4)
    torch.testing.assert_close(local.flatten(2).transpose(1, 2), tokens[:, prefix:], rtol=0, atol=0)
    if enc.readout == "cls":
        torch.testing.assert_close(glob, tokens[:, 0], rtol=0, atol=0)
    else:  # timm's own head pooling: mean of the patch tokens through fc_norm
        torch.testing.assert_close(glob, enc.backbone.forward_head(tokens, pre_logits=True), rtol=0, atol=1e-6)


def test_cls_plus_avg_concatenates_and_tokens_readout_matches():
    torch.manual_seed(0)
    enc = build_encoder("vit", {**TINY, "readout": "cls+avg"}).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = _reference(enc, x)
        glob = enc.forward_global(x)
        again = enc.readout_tokens(enc.forward_pre_readout(x))
    assert glob.shape == (2, 128) and enc.global_features == 128
    torch.testing.assert_close(glob, torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1))
    torch.testing.assert_close(again, glob, rtol=0, atol=0)


def test_mean_readout_of_kept_positions():
    torch.manual_seed(0)
    enc = build_encoder("vit", {**TINY, "fc_norm": True}).eval()
    x = torch.rand(2, 3, 32, 32)
    keep = torch.tensor([[0, 5], [2, 9]])
    with torch.no_grad():
        local = enc.forward_local(x)
        torch.testing.assert_close(enc.pool_map(local), enc.forward_global(x), rtol=0, atol=0)
        kept = torch.stack([local.flatten(2)[b, :, keep[b]].mean(1) for b in range(2)])
        torch.testing.assert_close(enc.pool_map(local, keep), enc.backbone.fc_norm(kept))


def test_dropping_tokens_from_the_last_block_equals_an_attention_mask():
    """Leaving patch tokens out of the last block = masking them out of its attention (for the CLS)."""
    torch.manual_seed(0)
    enc = build_encoder("vit", TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    keep = torch.tensor([[0, 3, 5, 9], [1, 2, 14, 15]])
    with torch.no_grad():
        tokens = enc.forward_pre_readout(x)
        dropped = enc.readout_tokens(tokens, keep)
        mask = torch.zeros(2, 1, 17, 17, dtype=torch.bool)
        mask[:, :, :, 0] = True
        for b in range(2):
            mask[b, :, :, keep[b] + 1] = True
        masked = enc.backbone.norm(enc.backbone.blocks[-1](tokens, attn_mask=mask))[:, 0]
    torch.testing.assert_close(dropped, masked, rtol=1e-5, atol=1e-5)


def test_other_input_sizes_resample_the_position_embedding():
    enc = build_encoder("vit", TINY).eval()
    assert enc.position_embedding(32) == "as trained (4x4 patches)"
    assert "4x4 -> 6x6" in enc.position_embedding(48)
    assert enc.forward_local(torch.rand(1, 3, 48, 48)).shape == (1, 64, 6, 6)


def test_registry_presets_and_errors():
    assert {"vit", "vit_tiny", "vit_small", "vit_base"} <= set(ARCHS)
    small = build_encoder("vit_small", {"depth": 1})
    assert small.backbone.embed_dim == 384 and small.backbone.blocks[0].attn.num_heads == 6
    assert small.backbone.blocks[0].attn.fused_attn  # timm calls scaled_dot_product_attention (fused on GPU)
    assert small.local_layer == "blocks.0" and small.receptive_field() is None
    with pytest.raises(UserError, match="needs a class token"):
        build_encoder("vit", {**TINY, "class_token": False, "readout": "cls"})
    with pytest.raises(UserError, match="no option width"):
        build_encoder("vit", {**TINY, "width": 3})


def test_run_directory_round_trip_keeps_timm_names(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("vit", {**TINY, "reg_tokens": 1}).eval()
    meta = RunMeta(method="byol", config={}, dataset={"name": "synthetic"}, input_size=32, epoch=0, step=0,
                   total_steps=1, finished=False, metrics={}, exported="online encoder", receptive_field=None,
                   local_branch=None, representation={"kind": "readout", "readout": "cls", "layer": "blocks.1"},
                   encoder=enc.describe(), views=[], distributed={"world_size": 1})
    save_run(tmp_path / "run", enc, meta, None)
    again, meta, _ = load_run_encoder(tmp_path / "run")
    assert meta["arch"] == {"name": "vit", "kwargs": {**TINY, "reg_tokens": 1}} and meta["local_layer"] == "blocks.1"
    assert "blocks.0.attn.qkv.weight" in enc.backbone.state_dict() and "reg_token" in enc.backbone.state_dict()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.forward_global(x), enc.forward_global(x), rtol=0, atol=0)
