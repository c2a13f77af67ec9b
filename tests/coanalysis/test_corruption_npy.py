"""Pre-rendered `.npy` corruption files are checked before use: dtype, rank, channels, image shape,
row count and labels; a bad file is refused in one line naming it and what was expected, and a
float array with NaN is refused, never cast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coanalysis.data.corruption.npy import NpySource
from coanalysis.models.trainer import UserError, load_dataset
from tests.coanalysis.test_corruption_sources import context
from tests.corruption_datafiles import npy_value, write_cifar_c


@pytest.fixture(scope="module")
def test_split():
    return load_dataset("synthetic", "test")


def _produce(root, test_split, severity=1):
    return NpySource(context(test_split, n=16), root, None).produce("fog", severity)


def _refused(root, test_split, *fragments):
    with pytest.raises(UserError) as error:
        _produce(root, test_split)
    message = str(error.value)
    assert "\n" not in message and ("fog.npy" in message or "labels.npy" in message), message
    for fragment in fragments:
        assert fragment in message, message


def _rewrite(root, transform):
    path = root / "fog.npy"
    np.save(path, transform(np.load(path)))


@pytest.fixture
def cifar_c(tmp_path, test_split):
    root = tmp_path / "CIFAR-10-C"
    write_cifar_c(root, test_split.labels.numpy(), ["fog"])
    return root


def test_a_good_uint8_file_is_read(cifar_c, test_split):
    got = _produce(cifar_c, test_split, severity=2)
    assert got.images.dtype == torch.uint8 and got.images.shape[1:] == (3, 32, 32) and "cast_from" not in got.notes


def test_float_with_nan_is_refused_not_cast(cifar_c, test_split):
    def with_nan(a):
        a = a.astype(np.float32)
        a[:, 0, 0, 0] = np.nan  # every row, so the chosen ones hold a NaN too
        return a
    _rewrite(cifar_c, with_nan)
    _refused(cifar_c, test_split, "NaN", "expected uint8")


def test_float_out_of_range_is_refused(cifar_c, test_split):
    _rewrite(cifar_c, lambda a: a.astype(np.float64) * 4.0 + 300.0)
    _refused(cifar_c, test_split, "[0, 255]")


def test_finite_float_in_range_is_rounded_and_recorded(cifar_c, test_split):
    before = _produce(cifar_c, test_split, severity=3)
    _rewrite(cifar_c, lambda a: a.astype(np.float32) + 0.25)
    got = _produce(cifar_c, test_split, severity=3)
    assert got.notes["cast_from"] == "float32" and torch.equal(got.images, before.images)
    assert int(before.images[0, 0, 0, 0]) in {npy_value(3, r) for r in range(len(test_split))}


@pytest.mark.parametrize("transform, expected", [
    (lambda a: a.astype(np.int16), "dtype int16"),
    (lambda a: a.astype(bool), "dtype bool"),
    (lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2)), "channels last"),
    (lambda a: a[..., :2], "channels last"),
    (lambda a: a[:, :, :16], "square"),
    (lambda a: a[:, None], "shape"),
    (lambda a: a[:, 0, 0, 0], "shape"),
    (lambda a: a[:-1], "severity blocks"),
    (lambda a: np.concatenate([a, a[: len(a) // 5]]), "severity blocks"),
])
def test_bad_arrays_are_refused_with_the_file_and_what_was_expected(cifar_c, test_split, transform, expected):
    _rewrite(cifar_c, transform)
    _refused(cifar_c, test_split, expected)


def test_bad_labels_are_refused(cifar_c, test_split):
    labels = np.load(cifar_c / "labels.npy")
    np.save(cifar_c / "labels.npy", labels.astype(np.float32))
    _refused(cifar_c, test_split, "labels.npy", "integer class labels")
    np.save(cifar_c / "labels.npy", labels.astype(np.int64) + 50)
    _refused(cifar_c, test_split, "labels.npy", "the evaluation classes")
