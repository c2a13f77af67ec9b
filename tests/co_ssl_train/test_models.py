"""Encoders: shapes, torchvision compatibility and the analytic receptive field."""

from __future__ import annotations

import math

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


def _gradient_support(net, layer: str) -> tuple[int, int, int, int, int]:
    """(rf, box top, box left, box height, box width) of the input-gradient support of the central
    unit of `layer`'s map, for an input large enough that the unit sees no padding."""
    rf = net.receptive_field(layer)
    jump = math.prod(s for _, s in net.layer_kernels(layer))
    size = rf + 2 * jump + 16
    x = torch.rand(4, 3, size, size, requires_grad=True)  # several images: no pixel is missed by chance
    out = net.forward_features(x, layer)
    i = out.shape[-1] // 2
    out[:, :, i, i].sum().backward()
    support = x.grad.abs().sum((0, 1)) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    top, left = int(rows.min()), int(cols.min())
    # every layer pads k // 2 with odd k, so unit i is centred on input pixel i * jump
    assert (top, left) == (i * jump - (rf - 1) // 2,) * 2
    return rf, top, left, int(rows.max()) - top + 1, int(cols.max()) - left + 1


@pytest.mark.parametrize("layer", ["layer1", "layer2", "layer3", "layer4"])
def test_receptive_field_equals_gradient_support(layer):
    """The input gradient of one central unit is non-zero on exactly the analytic square."""
    torch.manual_seed(0)
    net = build_backbone("resnet10", stem="cifar", width=8).eval()
    rf, _, _, height, width = _gradient_support(net, layer)
    assert height == rf and width == rf


BOUNDED = [("rf_resnet18", {"stem": "cifar", "rf": rf}, rf) for rf in (29, 43, 59, 99)] + [
    ("rf_resnet18", {"stem": "cifar", "rf": 0}, 109),
    ("rf_resnet18", {"stem": "imagenet", "rf": 43}, 43),
    ("bagnet9", {}, 9), ("bagnet17", {}, 17), ("bagnet33", {}, 33)]


@pytest.mark.parametrize("arch,kwargs,expected", BOUNDED, ids=[f"{a}-{k}" for a, k, _ in BOUNDED])
def test_bounded_rf_archs_have_exactly_their_analytic_support(arch, kwargs, expected):
    torch.manual_seed(0)
    net = build_backbone(arch, width=8, **kwargs).eval()
    assert net.receptive_field() == expected
    rf, _, _, height, width = _gradient_support(net, "layer4")
    assert (height, width) == (rf, rf)


def test_unreachable_receptive_field_is_a_user_error():
    with pytest.raises(UserError, match="cannot be reached"):
        build_backbone("rf_resnet18", stem="cifar", rf=30)  # even: the CIFAR stem only reaches odd values
    with pytest.raises(UserError, match="nearest reachable: .*27.*35"):
        build_backbone("rf_resnet18", stem="imagenet", rf=29)


@pytest.mark.parametrize("arch,kwargs", [("rf_resnet18", {"stem": "cifar", "rf": 43}), ("bagnet17", {}),
                                         ("resnet10", {"stem": "cifar"})])
def test_forward_stages_equals_forward_features(arch, kwargs):
    net = build_backbone(arch, width=4, **kwargs).eval()
    x = torch.rand(2, 3, 32, 32)
    maps = net.forward_stages(x, ("layer3", "layer4"))
    torch.testing.assert_close(maps[0], net.forward_features(x, "layer3"))
    torch.testing.assert_close(maps[1], net.forward_features(x, "layer4"))
    enc = build_encoder(arch, {"width": 4, **kwargs}).eval()
    torch.testing.assert_close(enc.forward_maps(x, ("layer4",))[0], enc.forward_local(x))


def test_unknown_arch_and_option_are_user_errors():
    with pytest.raises(UserError, match="resnet18"):
        build_backbone("vit_b16")
    with pytest.raises(UserError, match="no option depth"):
        build_backbone("resnet18", depth=3)
    assert "resnet10" in ARCHS


def test_families_name_the_torchvision_layouts():
    """`family == "resnet"` marks exactly the entries whose weights have torchvision's ResNet layout."""
    plain = {name for name, spec in ARCHS.items() if spec.family == "resnet"}
    assert plain == {"resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
                     "wide_resnet101_2"}
    assert {spec.family for spec in ARCHS.values()} == {"resnet", "rf-resnet", "bagnet", "vit"}
