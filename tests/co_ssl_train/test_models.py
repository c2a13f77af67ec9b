"""Encoders: shapes, torchvision compatibility and the analytic receptive field."""

from __future__ import annotations

import pytest
import torch
import torchvision

from co_ssl_train.errors import UserError
from co_ssl_train.models import ARCHS, build_backbone, build_encoder


@pytest.mark.parametrize("arch,channels", [("resnet18", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("stem,size,side", [("cifar", 32, 4), ("imagenet", 64, 2), ("imagenet", 224, 7)])
def test_local_and_global_shapes(arch, channels, stem, size, side):
    enc = build_encoder(arch, {"stem": stem, "width": 8}).eval()
    x = torch.rand(2, 3, size, size)
    local = enc.forward_local(x)
    assert local.shape == (2, channels // 8, side, side)
    torch.testing.assert_close(enc.forward_global(x), local.mean(dim=(2, 3)))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_same_names_and_outputs_as_torchvision(arch):
    tv = getattr(torchvision.models, arch)().eval()
    ours = build_backbone(arch).eval()
    weights = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    ours.load_state_dict(weights, strict=True)
    tv.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x).mean(dim=(2, 3)), tv(x))


def test_normalization_lives_inside_the_encoder():
    enc = build_encoder("resnet10", {"stem": "cifar", "width": 8}, mean=[0.5] * 3, std=[0.25] * 3).eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(enc.forward_local(x), enc.backbone.forward_features((x - 0.5) / 0.25))


def test_layer3_map_is_twice_the_side():
    enc = build_encoder("resnet18", {"stem": "cifar", "width": 8}, local_layer="layer3").eval()
    assert enc.forward_local(torch.rand(1, 3, 32, 32)).shape == (1, 32, 8, 8)
    assert enc.forward_local(torch.rand(1, 3, 32, 32), "layer4").shape == (1, 64, 4, 4)


def test_known_receptive_fields():
    # published values for torchvision's ResNets
    assert build_backbone("resnet18").receptive_field() == 435
    assert build_backbone("resnet50").receptive_field() == 427


@pytest.mark.parametrize("layer", ["layer1", "layer2", "layer3", "layer4"])
def test_receptive_field_equals_gradient_support(layer):
    """The input gradient of one central unit is non-zero on exactly the analytic square."""
    torch.manual_seed(0)
    net = build_backbone("resnet10", stem="cifar", width=8).eval()
    rf = net.receptive_field(layer)
    size = rf + 16
    x = torch.rand(1, 3, size, size, requires_grad=True)
    out = net.forward_features(x, layer)
    h = out.shape[-1] // 2
    out[0, :, h, h].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    assert int(rows.max() - rows.min() + 1) == rf and int(cols.max() - cols.min() + 1) == rf


def test_unknown_arch_and_option_are_user_errors():
    with pytest.raises(UserError, match="resnet18"):
        build_backbone("vit_b16")
    with pytest.raises(UserError, match="no option depth"):
        build_backbone("resnet18", depth=3)
    assert "resnet10" in ARCHS
