"""ViT checkpoints: every published layout loads to features equal to timm's own forward on the
same weights, and files co-ssl cannot read get one clear line."""

from __future__ import annotations

import pytest
import torch

from coanalysis.models.loading import load_encoder
from coanalysis.models.trainer import UserError
from tests.coanalysis import vit_layouts
from tests.coanalysis.vit_layouts import LAYOUTS, check_features, random_vit, tokens


def _save(tmp_path, obj, name="model.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_loads_to_timm_features(layout, tmp_path):
    build, fmt = LAYOUTS[layout]
    obj, model, readout = build()
    encoder = load_encoder(_save(tmp_path, obj))
    assert encoder.source.format == fmt and encoder.source.family == "vit"
    assert encoder.source.global_readout == readout and encoder.readout == readout
    check_features(encoder, model, readout)
    # heads, decoders, MIM tokens, other copies are listed
    assert encoder.source.dropped or layout in ("dino-hub", "mae-encoder")
    assert not any(k.startswith(("head.", "decoder_")) for k in encoder.backbone.state_dict())


def test_dropped_copies_and_branches(tmp_path):
    obj, model, _ = vit_layouts.dino_full()
    path = _save(tmp_path, obj)
    teacher = load_encoder(path)
    assert teacher.source.branch == "teacher" and any("student.module.backbone" in k for k in teacher.source.dropped)
    student = load_encoder(path, branch="student")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(student.forward_global(x), teacher.forward_global(x))
    obj, model, _ = vit_layouts.ijepa()
    ijepa = load_encoder(_save(tmp_path, obj, "ijepa.pth.tar"))
    assert ijepa.source.branch == "target_encoder" and "1 prefix" not in " ".join(ijepa.source.notes)
    assert load_encoder(tmp_path / "ijepa.pth.tar", branch="encoder").source.branch == "encoder"
    obj, _, _ = vit_layouts.timm_training()
    assert load_encoder(_save(tmp_path, obj, "timm.pth"), branch="ema").source.branch == "ema"


def test_architecture_read_from_the_shapes(tmp_path):
    obj, _, _ = vit_layouts.dinov2(registers=4)
    enc = load_encoder(_save(tmp_path, obj))
    assert enc.arch == "vit" and enc.arch_kwargs == {"patch_size": 8, "img_size": 32, "embed_dim": 192, "depth": 2,
                                                     "num_heads": 3, "reg_tokens": 4, "no_embed_class": True,
                                                     "init_values": 1e-5}
    assert any("3 attention heads" in n for n in enc.source.notes)
    obj, _, _ = vit_layouts.mocov3()
    assert load_encoder(_save(tmp_path, obj, "moco.pth.tar")).backbone.blocks[0].attn.num_heads == 12


def test_global_readout_option_is_recorded_and_keys_the_cache(tmp_path):
    obj, model, _ = vit_layouts.dino_hub()
    path = _save(tmp_path, obj)
    default, both = load_encoder(path), load_encoder(path, global_readout="cls+avg")
    assert both.source.global_readout == "cls+avg" and any("cls+avg set by the caller" in n for n in both.source.notes)
    assert default.source.loading() != both.source.loading()
    x = torch.rand(2, 3, 32, 32)
    ref = tokens(model, x)
    with torch.no_grad():
        torch.testing.assert_close(both.forward_global(x), torch.cat([ref[:, 0], ref[:, 1:].mean(1)], 1))
        avg = load_encoder(path, global_readout="avg").forward_global(x)
    torch.testing.assert_close(avg, ref[:, 1:].mean(1))


@pytest.mark.slow  # random init of 21.7 M parameters, an 87 MB file: ~50 s on the shared 2-core CPU
def test_vit_s16_at_224_px(tmp_path):
    """One real-shaped model: a DINO ViT-S/16 hub file at 224 px."""
    model = random_vit(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6)
    encoder = load_encoder(_save(tmp_path, model.state_dict(), "dino_deitsmall16_pretrain.pth"))
    assert encoder.arch == "vit_small" and encoder.arch_kwargs == {"patch_size": 16, "img_size": 224}
    check_features(encoder, model, "cls", size=224)
    assert encoder.position_embedding(224) == "as trained (14x14 patches)"


@pytest.mark.parametrize("change,message", [
    (lambda sd: {**sd, "blocks.0.attn.relative_position_bias_table": torch.zeros(3, 3)}, "relative position biases"),
    (lambda sd: {**sd, "blocks.0.attn.q_norm.weight": torch.ones(64)}, "QK-norm"),
    (lambda sd: {**sd, "pos_embed": sd["pos_embed"][:, :-3]}, "not a square patch grid"),
    (lambda sd: {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.weight"}, "lacks 1 weights"),
    (lambda sd: {**sd, "blocks.1.attn.extra.weight": torch.ones(2)}, "do not belong to vit"),
    (lambda sd: {k: v for k, v in sd.items() if not k.startswith("norm.")}, "without a final norm"),
])
def test_bad_vit_files_get_one_clear_line(change, message, tmp_path):
    obj, _, _ = vit_layouts.dino_hub()
    with pytest.raises(UserError, match=message) as err:
        load_encoder(_save(tmp_path, change(dict(obj))))
    assert "\n" not in str(err.value)


def test_wrong_options_on_a_vit_are_one_line(tmp_path):
    obj, _, _ = vit_layouts.ijepa()
    path = _save(tmp_path, obj)
    for kwargs, message in (({"global_readout": "cls"}, "has no class token"), ({"arch": "resnet50"}, "holds a Vision"),
                            ({"global_readout": "max"}, "unknown global readout"), ({"branch": "teacher"}, "no branch")):
        with pytest.raises(UserError, match=message):
            load_encoder(path, **kwargs)
    with pytest.raises(UserError, match="vit_tiny trunk lacks"):  # a named size's depth 12: the weights must fit
        load_encoder(path, arch="vit_tiny")
    assert load_encoder(path, arch="vit").arch_kwargs["depth"] == 2  # the free ViT keeps what the shapes say
