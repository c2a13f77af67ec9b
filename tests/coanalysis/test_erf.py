"""Effective receptive fields: analytic supports, batching, sizes, images and the stored result."""

from __future__ import annotations

import json
import math

import pytest
import torch

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.erf import (ERFProtocol, cells, erf_maps, map_index, mass_square_sides, support_box,
                                     support_side, unit_centre)
from coanalysis.results.derived.erf import decode_image, decode_map
from coanalysis.models.trainer import ARCHS, UserError, build_encoder
from coanalysis.run.pipeline import Session, open_model, run_analysis
from coanalysis.results.store import Result
from coanalysis.data.sample_images import default_files, load_images, package_data
from tests.coanalysis.analysis_encoders import ConvStack, wrap

CPU = torch.device("cpu")
GRADIENT = ERFProtocol()


def _images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_conv_stack_support_is_2k_plus_1(k):
    encoder = wrap(ConvStack(k), f"stack{k}")
    maps, index, size = erf_maps(encoder, _images(3, 32), (0.5, 0.5), "gradient", GRADIENT, device=CPU)
    assert index == (16, 16) and size == (32, 32)
    box = support_box(maps.sum(0) > 0)
    assert box == ((16 - k, 16 + k), (16 - k, 16 + k))
    centre, how = unit_centre(maps, index, size, 2 * k + 1)
    assert centre == (16.0, 16.0) and how == "support"
    assert support_side(maps.sum(0) > 0, centre) == 2 * k + 1
    assert mass_square_sides(maps, centre, (1.0,)).flatten().tolist() == [2 * k + 1] * 3
    # a corner unit: the support is cut by the border, the centre comes from the uncut edge and the RF
    maps, index, size = erf_maps(encoder, _images(3, 32), (0.0, 1.0), "gradient", GRADIENT, device=CPU)
    assert index == (0, 31) and support_box(maps.sum(0) > 0) == ((0, k), (31 - k, 31))
    assert unit_centre(maps, index, size, 2 * k + 1)[0] == (0.0, 31.0)


def _bounded_archs():
    """(name, kwargs, rf, input size) of every ARCHS entry whose receptive field fits a practical input."""
    out = []
    for name, spec in ARCHS.items():
        if spec.family == "vit":
            continue  # a patch token's receptive field is the whole image (test_vit_coanalysis.py)
        kwargs = {k: v for k, v in (("width", 8), ("stem", "cifar")) if k in spec.options}
        rf = build_encoder(name, kwargs).receptive_field()
        if rf is None:
            continue
        size = 32 * math.ceil((rf + 34) / 32)  # the centre unit's RF lies inside the image
        marks = [pytest.mark.slow] if size > 96 else []
        out.append(pytest.param(name, kwargs, rf, size, id=name, marks=marks) if size <= 192 else
                   pytest.param(name, kwargs, rf, size, id=name, marks=pytest.mark.skip(
                       reason=f"RF {rf} px needs inputs over 192 px")))
    return out


@pytest.mark.parametrize("name,kwargs,rf,size", _bounded_archs())
def test_erf_support_equals_the_analytic_receptive_field(name, kwargs, rf, size):
    torch.manual_seed(0)
    encoder = build_encoder(name, kwargs).eval()
    maps, index, map_size = erf_maps(encoder, _images(8, size), (0.5, 0.5), "gradient", GRADIENT, device=CPU,
                                     batch_size=4)
    (top, bottom), (left, right) = support_box(maps.sum(0) > 0)
    assert top > 0 and bottom < size - 1, "the test input is too small for this architecture"
    assert (bottom - top + 1, right - left + 1) == (rf, rf)
    centre, how = unit_centre(maps, index, map_size, rf)
    assert how == "support"
    # co-ssl's ResNets are same-padded: the support's middle is the stride-aligned position
    if name.startswith(("resnet", "wide_resnet")):
        assert centre == (index[0] * size / map_size[0], index[1] * size / map_size[1])


@pytest.mark.parametrize("method", ["gradient", "integrated-gradients"])
def test_batched_erf_equals_per_image_erf(method):
    torch.manual_seed(0)
    encoder = build_encoder("resnet10", {"width": 8, "stem": "cifar"}).eval()
    images = _images(6, 32)
    protocol = ERFProtocol(ig_steps=8)
    batched, _, _ = erf_maps(encoder, images, (0, 0.5), method, protocol, device=CPU, batch_size=6)
    single = torch.cat([erf_maps(encoder, images[k:k + 1], (0, 0.5), method, protocol, device=CPU, batch_size=1)[0]
                        for k in range(6)])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-6 * float(single.max()))
    assert (batched > 0).any()


def test_one_backward_pass_per_batch(monkeypatch):
    calls = []
    original = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    encoder = wrap(ConvStack(2), "stack2")
    erf_maps(encoder, _images(10, 16), (0.5, 0.5), "gradient", GRADIENT, device=CPU, batch_size=5)
    assert len(calls) == 2


def test_mass_squares_and_support_on_known_maps():
    maps = torch.zeros(3, 11, 11)
    maps[0, 5, 5] = 2.0  # a point
    maps[1, 3:8, 3:8] = 1.0  # a uniform 5x5 block
    sides = mass_square_sides(maps, (5.0, 5.0), (0.2, 0.5, 0.9, 1.0))
    assert sides[0].tolist() == [1, 1, 1, 1]
    assert sides[1].tolist() == [3, 5, 5, 5]  # 3x3 holds 9/25 >= 20%, 50% needs the whole block
    assert torch.isnan(sides[2]).all()  # an all-zero map has no size
    # a square centred off the block: the side grows to reach it
    assert mass_square_sides(maps[1:2], (0.0, 0.0), (1.0,)).item() == 15
    assert support_side(maps[1] > 0, (5.0, 5.0)) == 5


def test_map_index_and_protocol_checks():
    assert [map_index(u, 4) for u in (0, 0.5, 1)] == [0, 2, 3]
    assert [map_index(u, 7) for u in (0, 0.5, 1)] == [0, 3, 6]
    with pytest.raises(UserError, match="outside"):
        ERFProtocol(coords=((1.5, 0),))
    with pytest.raises(UserError, match="unknown ERF method"):
        ERFProtocol(methods=("lrp",))
    assert cells(ERFProtocol(coords=((0, 0), (0.0, 0.0)), methods=("gradient", "smoothgrad"))) == \
        ["gradient@0,0", "smoothgrad@0,0"]


def test_default_images_come_from_scikit_image_and_foolbox():
    files = default_files()
    if not files:
        pytest.skip("neither scikit-image nor foolbox is installed")
    names = [n for n, _ in files]
    if package_data("skimage") is not None:
        assert names[0] == "skimage:chelsea.png"
    if package_data("foolbox") is not None:
        assert sum(n.startswith("foolbox:imagenet_") for n in names) == 20
        assert sum(n.startswith("foolbox:cifar10_") for n in names) == 20
    images = load_images(["default"], 24, limit=40)
    assert images.images.shape == (40, 3, 24, 24) and images.images.dtype == torch.uint8
    assert not images.skipped


def test_odd_images_are_converted_and_undecodable_files_named(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("L", (40, 30), 128).save(folder / "grey.png")
    Image.new("P", (20, 20), 3).save(folder / "palette.png")
    Image.new("CMYK", (30, 50), (10, 20, 30, 0)).save(folder / "cmyk.jpg")
    Image.new("RGBA", (16, 16), (255, 0, 0, 10)).save(folder / "alpha.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    images = load_images([str(folder)], 16)
    assert images.images.shape == (4, 3, 16, 16)
    assert images.skipped == [str(folder / "broken.jpg")]
    assert images.images[images.names.index(str(folder / "alpha.png")), 0].float().mean() > 250
    with pytest.raises(UserError, match="does not exist"):
        load_images([str(tmp_path / "missing")], 16)
    (tmp_path / "only_broken").mkdir()
    (tmp_path / "only_broken" / "x.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="could be decoded"):
        load_images([str(tmp_path / "only_broken")], 16)


def test_analysis_result_round_trips_and_renders(tiny_runs, tmp_path):
    from coanalysis.commands.erf import image_context
    from coanalysis.figures.erf import erf_average_figure, erf_grid_figure, erf_size_figure

    session = Session(out=tmp_path / "res", progress=False, batch_size=16)
    encoder = open_model(session, str(tiny_runs["byol"]), "byol")
    protocol = ERFProtocol(n_images=6, methods=("gradient", "smoothgrad"), coords=((0, 0), (0.5, 0.5)),
                           smoothgrad_samples=2, show=2)
    ctx = image_context(session, encoder, protocol)
    result = run_analysis(session, ctx, ANALYSES["erf"], protocol)
    assert result.complete and len(result.cells) == 4 and result.protocol["data"]["n"] == 6
    cell = result.cells["gradient@0.5,0.5"]
    assert cell["analytic_rf"] == 49 and cell["index"] == [2, 2] and cell["input_size"] == [32, 32]
    assert cell["n_images"] == 6 and len(cell["examples"]) == 2
    assert decode_map(cell["mean_map"]).shape == (32, 32) and decode_image(cell["examples"][0]["image"]).shape == \
        (32, 32, 3)
    for q in ("20", "50", "90"):
        assert 1 <= cell["sizes"][q]["mean"] <= 2 * 32 + 1
    assert cell["sizes"]["20"]["mean"] <= cell["sizes"]["50"]["mean"] <= cell["sizes"]["90"]["mean"]
    stored = Result.from_json(json.loads(session.store.path("byol", "erf").read_text()))
    assert stored == result
    for fig in (erf_grid_figure([stored], {"byol": (0, 0, 1)}), erf_average_figure([stored], {"byol": (0, 0, 1)}),
                erf_size_figure([stored], {"byol": (0, 0, 1)}), erf_grid_figure([stored], {"byol": (0, 0, 1)},
                                                                                "smoothgrad")):
        assert fig.axes
    # another coordinate adds a cell and keeps the others; the merged protocol crosses every method
    # with every coordinate, so the result is incomplete until smoothgrad is run there too
    more = run_analysis(session, ctx, ANALYSES["erf"], ERFProtocol(n_images=6, coords=((0, 0.5),), show=2,
                                                                    smoothgrad_samples=2))
    assert set(more.cells) == set(result.cells) | {"gradient@0,0.5"}
    assert not more.complete and more.expected_cells == 6
    assert more.cells["gradient@0,0"] == result.cells["gradient@0,0"]
    done = run_analysis(session, ctx, ANALYSES["erf"], ERFProtocol(n_images=6, coords=((0, 0.5),), show=2,
                                                                    methods=("smoothgrad",), smoothgrad_samples=2))
    assert done.complete and len(done.cells) == 6
