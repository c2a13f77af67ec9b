"""Corruption sources: generated images equal imagecorruptions' own output byte for byte, the
uint8 cache returns what was generated, and each pre-rendered layout is read correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coanalysis.analyses.context import EvalContext
from coanalysis.data.corruption.folders import FolderSource
from coanalysis.data.corruption.generated import GeneratedSource
from coanalysis.results.corruption_names import ALL, MIN_SIDE, SEEDED_BY_ARGUMENT, STANDARD, check_names, corruption_seed
from coanalysis.data.corruption.npy import NpySource
from coanalysis.data.corruption.outcome import Corrupted, Missing
from coanalysis.data.corruption.pool import corrupt_images, corrupt_one
from coanalysis.data.corruption.provider import CorruptionProvider
from coanalysis.data.corruption.sources import detect_layout
from coanalysis.features.extraction import EvalData
from coanalysis.models.trainer import UserError, load_dataset
from tests.corruption_datafiles import folder_colour, npy_value, write_cifar_c, write_imagenet_c
from tests.datafiles import write_image_folder


def context(dataset, n=None, seed=0) -> EvalContext:
    """A context with data only: the sources need images, not a model."""
    return EvalContext(encoder=None, probe=None, data=EvalData.from_dataset(dataset, n, seed),
                       device=torch.device("cpu"), precision="fp32", batch_size=64)


def reference(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions called directly, seeded the way the source promises."""
    from imagecorruptions import corrupt

    np.random.seed(seed)
    kwargs = {"seed": seed} if corruption in SEEDED_BY_ARGUMENT else {}
    return corrupt(image, severity=severity, corruption_name=corruption, **kwargs)


def generated(ctx, corruption, severity, tmp_path, workers, seed=0, n=None) -> Corrupted:
    provider = CorruptionProvider(GeneratedSource(ctx, n, seed, workers), tmp_path / "cache")
    return provider.get(corruption, severity)


@pytest.mark.parametrize("workers", [1, 2])
def test_generated_images_are_byte_identical_to_imagecorruptions(tmp_path, workers):
    ctx = context(load_dataset("synthetic", "test"), n=6)
    subset = ctx.images(6)
    for corruption in ("gaussian_noise", "impulse_noise", "frost", "motion_blur", "elastic_transform"):
        got = generated(ctx, corruption, 3, tmp_path, workers, seed=7, n=6)
        assert got.images.dtype == torch.uint8 and got.images.shape == subset.images.shape
        assert torch.equal(got.labels, subset.labels)
        for image, out, pos in zip(subset.images, got.images, subset.positions.tolist()):
            expected = reference(image.permute(1, 2, 0).numpy().copy(), corruption, 3,
                                 corruption_seed(7, corruption, 3, pos))
            assert np.array_equal(out.permute(1, 2, 0).numpy(), expected), corruption


@pytest.mark.slow
def test_all_nineteen_corruptions_byte_identical_through_worker_processes(tmp_path):
    ctx = context(load_dataset("synthetic", "test"), n=4)
    subset = ctx.images(4)
    for corruption in ALL:
        for severity in (1, 5):
            got = generated(ctx, corruption, severity, tmp_path, 2, seed=3, n=4)
            for image, out, pos in zip(subset.images, got.images, subset.positions.tolist()):
                expected = reference(image.permute(1, 2, 0).numpy().copy(), corruption, severity,
                                     corruption_seed(3, corruption, severity, pos))
                assert np.array_equal(out.permute(1, 2, 0).numpy(), expected), (corruption, severity)


def test_seeds_are_keyed_by_name_and_position():
    seeds = {corruption_seed(0, c, s, p) for c in ALL for s in range(1, 6) for p in range(3)}
    assert len(seeds) == len(ALL) * 5 * 3 and all(0 <= s < 2 ** 32 for s in seeds)
    assert corruption_seed(0, "fog", 3, 5) == corruption_seed(0, "fog", 3, 5) != corruption_seed(1, "fog", 3, 5)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    seeds = [corruption_seed(0, "shot_noise", 2, p) for p in range(5)]
    whole = corrupt_images(images, "shot_noise", 2, seeds)
    parts = np.concatenate([corrupt_images(images[:2], "shot_noise", 2, seeds[:2]),
                            corrupt_images(images[2:], "shot_noise", 2, seeds[2:])])
    assert np.array_equal(whole, parts)  # the same image and seed give the same bytes in any chunk


def test_small_images_are_upsampled_to_32_px_and_back(tmp_path):
    from PIL import Image

    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    up = np.asarray(Image.fromarray(image).resize((MIN_SIDE, MIN_SIDE), Image.BILINEAR))
    expected = np.asarray(Image.fromarray(reference(up, "fog", 2, 11)).resize((16, 16), Image.BILINEAR))
    assert np.array_equal(corrupt_one(image, "fog", 2, 11), expected)
    ctx = context(load_dataset("synthetic", "test", image_size=16), n=3)
    got = generated(ctx, "contrast", 1, tmp_path, 1, n=3)
    assert got.images.shape == (3, 3, 16, 16) and got.notes == {"upsampled_to": MIN_SIDE}


def test_cache_returns_the_generated_bytes_and_prefetch_matches(tmp_path):
    ctx = context(load_dataset("synthetic", "test"), n=5)
    source = GeneratedSource(ctx, 5, 0, 1)
    first = CorruptionProvider(source, tmp_path).get("pixelate", 4)

    def refuse(*args):
        raise AssertionError("the cache should have answered")

    source.produce = refuse
    again = CorruptionProvider(source, tmp_path).get("pixelate", 4)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    fresh = CorruptionProvider(GeneratedSource(ctx, 5, 0, 1), tmp_path / "other")
    fresh.prefetch("pixelate", 4)
    assert torch.equal(fresh.get("pixelate", 4).images, first.images)
    seed0 = CorruptionProvider(GeneratedSource(ctx, 5, 0, 1), tmp_path).get("gaussian_noise", 4)
    seed1 = CorruptionProvider(GeneratedSource(ctx, 5, 1, 1), tmp_path).get("gaussian_noise", 4)
    assert not torch.equal(seed0.images, seed1.images)  # the seed is part of the cache key


def test_the_rows_of_a_split_cell_are_the_whole_cells_rows_cached_apart(tmp_path):
    """A torchrun rank's share of a cell (rows [start, end)): the same bytes as those rows of the whole
    cell, cached as an entry of its own, and sliced from the whole cell's entry once that is cached."""
    ctx = context(load_dataset("synthetic", "test"), n=9)
    whole = CorruptionProvider(GeneratedSource(ctx, 9, 0, 1), tmp_path / "whole").get("gaussian_noise", 2)
    parts = CorruptionProvider(GeneratedSource(ctx, 9, 0, 1), tmp_path / "parts")
    parts.prefetch("gaussian_noise", 2, (0, 4))
    first, second = parts.get("gaussian_noise", 2, (0, 4)), parts.get("gaussian_noise", 2, (4, 9))
    assert torch.equal(torch.cat([first.images, second.images]), whole.images)
    assert torch.equal(torch.cat([first.labels, second.labels]), whole.labels)
    source = GeneratedSource(ctx, 9, 0, 1)

    def refuse(*args):
        raise AssertionError("the cache should have answered")

    source.produce = refuse
    assert torch.equal(CorruptionProvider(source, tmp_path / "parts").get("gaussian_noise", 2, (4, 9)).images,
                       second.images)  # its own entry
    assert torch.equal(CorruptionProvider(source, tmp_path / "whole").get("gaussian_noise", 2, (2, 7)).images,
                       whole.images[2:7])  # sliced from the whole cell


def test_names_and_groups():
    assert check_names(["standard"]) == STANDARD and check_names(["all"]) == ALL
    assert check_names(["fog", "weather"]) == ("fog", "snow", "frost")
    with pytest.raises(UserError, match="unknown corruption 'fgo'"):
        check_names(["fgo"])


# ---- pre-rendered sets ----

@pytest.fixture
def folder_eval(tmp_path):
    root = tmp_path / "imagenet"
    write_image_folder(root)  # val/{cat,dog}/{0,1,2}.png + cmyk.jpg
    return context(load_dataset("imagefolder", "val", root=root, image_size=32))


NAMES = {"cat": ["0.png", "1.png", "2.png", "cmyk.jpg"], "dog": ["0.png", "1.png", "2.png", "cmyk.jpg"]}


def test_imagenet_c_folders_matched_by_file_name_with_modes_converted(folder_eval, tmp_path):
    root = tmp_path / "imagenet-c"
    write_imagenet_c(root, NAMES, ["gaussian_noise", "fog"], [1, 2], group="noise",
                     broken=("fog", "dog", "1.png"))
    assert detect_layout(root) == "folders"
    source = FolderSource(folder_eval, root, None, 1)
    got = source.produce("gaussian_noise", 2)
    assert got.images.shape == (8, 3, 32, 32) and got.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    for k, image in enumerate(got.images):
        colour = torch.tensor(folder_colour(2, k % 4), dtype=torch.int16)[:, None, None]
        tolerance = 3 if k % 4 == 3 else 0  # the CMYK file is a JPEG
        assert (image.short() - colour).abs().max() <= tolerance
    assert got.notes["alignment"].startswith("files of the evaluation subset") and got.notes["unmatched"] == 0
    assert got.notes["undecodable_count"] == 0 and "resized_from" not in got.notes
    broken = source.produce("fog", 1)
    assert len(broken.labels) == 7 and broken.notes["undecodable_count"] == 1
    assert broken.notes["undecodable"] == ["noise/fog/1/dog/1.png"]
    assert isinstance(source.produce("fog", 3), Missing) and isinstance(source.produce("snow", 1), Missing)
    assert "snow/1" in source.produce("snow", 1).reason


def test_tiny_imagenet_c_is_resized_to_the_evaluation_size(folder_eval, tmp_path):
    root = tmp_path / "tiny-c"
    write_imagenet_c(root, {"cat": ["0.png", "2.png"]}, ["defocus_blur"], [5], size=64)
    got = FolderSource(folder_eval, root, None, 2).produce("defocus_blur", 5)
    assert got.images.shape == (2, 3, 32, 32) and got.notes["unmatched"] == 6
    assert got.notes["resized_from"] == [[64, 64]] and got.notes["resized_to"] == 32
    assert (got.images[0].short() - folder_colour(5, 0)[0]).abs().max() == 0


def test_folders_without_matching_names_use_a_seeded_subset(tmp_path):
    ctx = context(load_dataset("synthetic", "test"))  # in memory: no file names to match
    root = tmp_path / "c"
    write_imagenet_c(root, {"shape1": ["a.png", "b.png"], "shape3": ["c.png"], "zebra": ["z.png"]}, ["snow"], [3])
    got = FolderSource(ctx, root, None, 1).produce("snow", 3)
    assert got.labels.tolist() == [1, 1, 3] and got.notes["unknown_class_folders"] == ["zebra"]
    assert got.notes["alignment"].startswith("seeded subset")
    write_imagenet_c(tmp_path / "d", {"zebra": ["z.png"]}, ["snow"], [3])
    with pytest.raises(UserError, match="not classes of the evaluation dataset"):
        FolderSource(ctx, tmp_path / "d", None, 1).produce("snow", 3)


def test_cifar_c_npy_rows_align_with_the_evaluation_subset(tmp_path):
    test = load_dataset("synthetic", "test")
    root = tmp_path / "CIFAR-10-C"
    write_cifar_c(root, test.labels.numpy(), ["fog"], severities=5)
    write_cifar_c(root, test.labels.numpy(), ["snow"], severities=3, grey=["snow"])
    assert detect_layout(root) == "npy"
    ctx = context(test, n=40, seed=3)
    source = NpySource(ctx, root, None)
    got = source.produce("fog", 4)
    subset = ctx.images()
    rows = ctx.data.indices[subset.positions]
    assert torch.equal(got.labels, subset.labels) and got.notes["label_mismatches"] == 0
    assert torch.equal(got.images[:, 0, 0, 0], torch.tensor([npy_value(4, int(r)) for r in rows], dtype=torch.uint8))
    grey = source.produce("snow", 3)
    assert grey.images.shape == (40, 3, 32, 32) and torch.equal(grey.images[:, 0], grey.images[:, 2])
    assert isinstance(source.produce("snow", 4), Missing) and isinstance(source.produce("frost", 1), Missing)
    small = NpySource(context(load_dataset("synthetic", "test", image_size=16), n=8), root, None).produce("fog", 1)
    assert small.images.shape == (8, 3, 16, 16) and small.notes["resized_from"] == [[32, 32]]


def test_cifar_c_labels_that_disagree_are_refused(tmp_path):
    test = load_dataset("synthetic", "test")
    write_cifar_c(tmp_path, (test.labels.numpy() + 1) % 4, ["fog"])
    with pytest.raises(UserError, match="disagrees"):
        NpySource(context(test), tmp_path, None).produce("fog", 1)


def test_a_folder_without_corruptions_is_refused(tmp_path):
    with pytest.raises(UserError, match="no pre-rendered corruptions"):
        detect_layout(tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        detect_layout(tmp_path / "nope")
