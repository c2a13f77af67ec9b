"""Every checkpoint layout loads into the encoder that computes the source model's features.

Known answers: a randomly initialized torchvision ResNet (random BatchNorm statistics too) is saved
in each framework's layout (tests/coanalysis/layouts.py); the loaded encoder's local map and global
vector must equal the torchvision trunk's on the same images, the format must be detected, and the
heads / momentum copies must be reported as dropped.
"""

from __future__ import annotations

import pytest
import torch

from coanalysis import load_encoder
from coanalysis.models.formats import FORMATS
from coanalysis.models.formats.arch import SIGNATURES, infer_arch
from coanalysis.models.trainer import ARCHS, UserError, build_encoder
from tests.coanalysis.layouts import (LAYOUTS, constant_copy, random_resnet, reference_features, trunk_state,
                                      write_layout)

# a key each layout must report as dropped (a head, queue, momentum copy or the other network)
DROPPED = {
    "torchvision": "fc.weight", "torchvision-safetensors": "fc.bias", "dino-hub": None, "timm-state-dict": "fc.weight",
    "timm-train": "state_dict_ema.conv1.weight", "solo-learn": "momentum_backbone.conv1.weight",
    "lightly": "backbone_momentum.0.weight", "mmselfsup": "target_net.module.0.conv1.weight",
    "mmpretrain": "head.fc.weight", "vissl": "heads.0.prototypes0.weight", "vissl-flat": "heads.0.clf.0.weight",
    "dino": "student.module.backbone.conv1.weight", "moco": "module.queue", "mocov3": "module.predictor.0.weight",
    "swav": "module.prototypes.weight", "deepcluster-v2": "module.prototypes.prototypes2.weight",
    "pycontrast": "model_ema.encoder.conv1.weight",
}
RESNET50_DEFAULT = ("torchvision-safetensors", "mocov3", "vissl")  # the other resnet50 layouts are marked slow


X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def models() -> dict:
    return {}


def _model(models: dict, arch: str) -> torch.nn.Module:
    if arch not in models:
        models[arch] = random_resnet(arch, seed=1)
        models[(arch, "local")] = reference_features(models[arch], X)[0]
    return models[arch]


def _check_layout(layout: str, arch: str, models: dict, tmp_path) -> None:
    model = _model(models, arch)
    path = write_layout(layout, model, arch, tmp_path)
    encoder = load_encoder(path)
    source = encoder.source
    assert source.format == LAYOUTS[layout][2]
    assert source.arch == arch and source.arch_kwargs == {"stem": "imagenet"}
    assert len(source.content_hash) == 64 and not encoder.training
    with torch.no_grad():
        torch.testing.assert_close(encoder.forward_local(X), models[(arch, "local")], rtol=0, atol=1e-5)
    if DROPPED[layout] is None:
        assert not source.dropped
    else:
        assert DROPPED[layout] in source.dropped
        assert source.notes[0].startswith(f"dropped {len(source.dropped)} keys")
    assert source.normalization == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_resnet18_layouts_give_the_source_features(layout, models, tmp_path):
    _check_layout(layout, "resnet18", models, tmp_path)


@pytest.mark.parametrize("layout", [pytest.param(name, marks=() if name in RESNET50_DEFAULT else pytest.mark.slow)
                                    for name in LAYOUTS])
def test_resnet50_layouts_give_the_source_features(layout, models, tmp_path):
    _check_layout(layout, "resnet50", models, tmp_path)


def test_every_format_has_a_layout_test():
    from tests.coanalysis.vit_layouts import LAYOUTS as VIT_LAYOUTS  # test_vit_formats.py

    tested = {LAYOUTS[name][2] for name in LAYOUTS} | {fmt for _, fmt in VIT_LAYOUTS.values()}
    assert tested == set(FORMATS) - {"co-ssl-run"}  # co-ssl-run: test_loading


@pytest.mark.parametrize("layout,branch,value", [("dino", "student", 0.01), ("timm-train", "ema", 0.5),
                                                 ("pycontrast", "ema", 0.0)])
def test_branch_selects_the_other_network(layout, branch, value, models, tmp_path):
    model = _model(models, "resnet18")
    path = write_layout(layout, model, "resnet18", tmp_path)
    other = random_resnet("resnet18")
    other.load_state_dict({**model.state_dict(), **constant_copy(trunk_state(model), value)})
    x = torch.rand(2, 3, 32, 32)
    encoder = load_encoder(path, branch=branch)
    assert encoder.source.branch == branch
    with torch.no_grad():
        torch.testing.assert_close(encoder.forward_global(x), reference_features(other, x)[1], rtol=0, atol=1e-5)
    with pytest.raises(UserError, match="no branch 'nope'"):
        load_encoder(path, branch="nope")


def test_solo_learn_cifar_stem_and_statistics(models, tmp_path):
    """solo-learn's CIFAR ResNet: 3x3 conv1 with padding 2, no max-pool, CIFAR statistics."""
    from tests.coanalysis import layouts

    model = random_resnet("resnet18", seed=2)
    model.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = torch.nn.Identity()
    model.eval()
    obj = layouts.solo_learn_layout(model, "resnet18")
    cfg = obj["hyper_parameters"]["cfg"]
    cfg._content["data"]._content["dataset"]._val = "cifar10"
    path = tmp_path / "simclr-cifar10.ckpt"
    with layouts.framework_modules():
        torch.save(obj, path)
    encoder = load_encoder(path)
    assert encoder.source.arch_kwargs == {"stem": "cifar"} and encoder.source.adjustments == {"conv1_padding": 2}
    assert encoder.source.dataset == "cifar10" and encoder.source.method == "byol"
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 32, 32)
    ref_local, _ = reference_features(model, x, mean, std)
    with torch.no_grad():
        local = encoder.forward_local(x)
    assert local.shape == ref_local.shape == (2, 512, 5, 5)  # padding 2: 34 px after conv1
    torch.testing.assert_close(local, ref_local, rtol=0, atol=1e-5)


def test_forced_format_and_arch(models, tmp_path):
    path = write_layout("swav", _model(models, "resnet18"), "resnet18", tmp_path)
    assert load_encoder(path, format="swav", arch="resnet18").source.format == "swav"
    with pytest.raises(UserError, match="no ResNet weights found as format moco"):
        load_encoder(path, format="moco")
    with pytest.raises(UserError, match="unknown checkpoint format 'mocov9'"):
        load_encoder(path, format="mocov9")
    with pytest.raises(UserError, match="resnet34 trunk lacks"):
        load_encoder(path, arch="resnet34")


def test_missing_backbone_key_is_an_error(models, tmp_path):
    sd = _model(models, "resnet18").state_dict()
    del sd["layer4.1.bn2.weight"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(UserError, match=r"lacks 1 weights \(layer4.1.bn2.weight\)"):
        load_encoder(tmp_path / "broken.pth")


def test_old_files_without_batchnorm_counters_load(models, tmp_path):
    model = _model(models, "resnet18")
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "resnet18-5c106cde.pth")
    encoder = load_encoder(tmp_path / "resnet18-5c106cde.pth")
    assert any("num_batches_tracked" in note for note in encoder.source.notes)
    with torch.no_grad():
        torch.testing.assert_close(encoder.forward_global(X), models[("resnet18", "local")].mean(dim=(2, 3)),
                                   rtol=0, atol=1e-5)


def test_unknown_layout_names_the_closest_formats(models, tmp_path):
    trunk = trunk_state(_model(models, "resnet18"))
    torch.save({"net": {f"encoder.module.{k}": v for k, v in trunk.items()}}, tmp_path / "odd.pth")
    with pytest.raises(UserError) as err:
        load_encoder(tmp_path / "odd.pth")
    message = str(err.value)
    assert "unknown checkpoint layout" in message and "net/encoder.module.conv1.weight" in message
    assert "trunk seems to sit under 'net/encoder.module.'" in message
    assert "closest known formats: pycontrast (model -> module.encoder.*)" in message and "--format" in message
    assert len(message.splitlines()) == 1
    torch.save({"step": torch.zeros(1), "config": {"lr": 0.1}}, tmp_path / "no_weights.pth")
    with pytest.raises(UserError, match=r"no ResNet or ViT trunk found; keys: step, config/lr"):
        load_encoder(tmp_path / "no_weights.pth")


TORCHVISION_LAYOUT = [n for n, spec in ARCHS.items() if spec.family == "resnet"]


@pytest.mark.parametrize("name", TORCHVISION_LAYOUT)
def test_arch_inference_over_the_registry(name):
    """Every torchvision-layout ResNet in ARCHS is recognised from its shapes (RF-ResNets and
    BagNets are ours: they come only from run directories, whose meta.json names them)."""
    for kwargs in ({"stem": "imagenet", "width": 8}, {"stem": "cifar", "width": 16}):
        tensors = build_encoder(name, kwargs).backbone.state_dict()
        assert infer_arch(tensors, "test") == (name, kwargs)
    assert set(SIGNATURES.values()) == set(TORCHVISION_LAYOUT)


def test_arch_inference_of_full_width_and_wide_torchvision_shapes():
    assert infer_arch(trunk_state(random_resnet("resnet18")), "t") == ("resnet18", {"stem": "imagenet"})
    wide = build_encoder("wide_resnet50_2", {"stem": "imagenet"}).backbone.state_dict()
    assert infer_arch(wide, "t") == ("wide_resnet50_2", {"stem": "imagenet"})
    x2 = build_encoder("resnet50", {"stem": "imagenet", "width": 128}).backbone.state_dict()  # SimCLR/SwAV "x2"
    assert infer_arch(x2, "t") == ("resnet50", {"stem": "imagenet", "width": 128})


@pytest.mark.parametrize("change,message", [
    ("grouped", "ResNeXt"), ("deep stem", "deep 3x3 stem"), ("se", "squeeze-excitation"),
    ("grey", "takes 1 input channels"), ("3 stages", "stage layer4 is missing"),
])
def test_resnet_variants_co_ssl_cannot_build_are_named(change, message):
    tensors = dict(build_encoder("resnet50", {"stem": "imagenet", "width": 8}).backbone.state_dict())
    if change == "grouped":
        w = tensors["layer1.0.conv2.weight"]
        tensors["layer1.0.conv2.weight"] = torch.zeros(w.shape[0], w.shape[1] // 4, 3, 3)
    elif change == "deep stem":
        tensors["conv1.0.weight"] = tensors.pop("conv1.weight")
    elif change == "se":
        tensors["layer1.0.se.fc1.weight"] = torch.zeros(2, 32, 1, 1)
    elif change == "grey":
        tensors["conv1.weight"] = tensors["conv1.weight"][:, :1]
    else:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("layer4.")}
    with pytest.raises(UserError, match=message):
        infer_arch(tensors, "test")
