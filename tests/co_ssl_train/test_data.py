"""The data layer: every source read from its real layout, with known pixel values."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from co_ssl_train.data import DATASETS, load_dataset
from co_ssl_train.data.datasets import UNDECODABLE, iterate_batches
from co_ssl_train.errors import UserError
from tests.datafiles import write_cifar10, write_fashion_mnist, write_idx, write_image_folder, write_stl10


def test_synthetic_is_deterministic_uint8_and_balanced():
    a = load_dataset("synthetic", "train")
    b = load_dataset("synthetic", "train")
    assert a.images.dtype == torch.uint8 and a.images.shape == (512, 3, 32, 32)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.bincount(a.labels).tolist() == [128] * 4
    assert not torch.equal(a.images[:256], load_dataset("synthetic", "test").images)


def test_fashion_mnist_from_torchvision_layout_is_32px_rgb(tmp_path):
    arrays = write_fashion_mnist(tmp_path)
    ds = load_dataset("fashion-mnist", "train", root=tmp_path)
    assert ds.images.shape == (20, 3, 32, 32) and ds.images.dtype == torch.uint8
    # constant images stay constant through the resize, and all three channels are equal
    for i in (0, 5, 19):
        assert torch.all(ds.images[i] == int(arrays["train"][i, 0, 0]))
    assert ds.labels.tolist() == [i % 10 for i in range(20)]
    assert ds.info.num_classes == 10 and ds.info.image_size == 32
    assert len(load_dataset("fashion-mnist", "test", root=tmp_path)) == 10


def test_fashion_mnist_flat_uncompressed_files(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 7], np.uint8), gz=False)
    ds = load_dataset("fashion-mnist", "test", root=tmp_path, image_size=28)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))  # native size: exact pixels
    assert ds.labels.tolist() == [3, 7]


def test_truncated_idx_file_is_a_user_error(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    import gzip

    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) // 2]))
    with pytest.raises(UserError, match="truncated"):
        load_dataset("fashion-mnist", "test", root=tmp_path)


def test_missing_fashion_mnist_names_the_ways_to_get_it(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("fashion-mnist", "train", root=tmp_path)
    message = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--data-root" in message and "--download" in message
    assert "\n" not in message


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(UserError) as e:
        load_dataset("imagenet-21k", "train")
    assert all(name in str(e.value) for name in DATASETS)


def test_unknown_split_and_missing_root(tmp_path):
    with pytest.raises(UserError, match="no split"):
        load_dataset("synthetic", "validation")
    with pytest.raises(UserError, match="not a folder"):
        load_dataset("cifar10", "train", root=tmp_path / "nowhere")


def test_cifar10_reads_rows_as_chw(tmp_path):
    test_rows = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", "test", root=tmp_path)
    assert ds.images.shape == (4, 3, 32, 32)
    assert torch.equal(ds.images[1], torch.from_numpy(test_rows[1].reshape(3, 32, 32)))
    assert len(load_dataset("cifar10", "train", root=tmp_path)) == 20


def test_cifar_batch_that_runs_code_is_refused(tmp_path):
    write_cifar10(tmp_path)

    class Payload:
        def __reduce__(self):
            return (exec, ("open('/tmp/co_ssl_pwned', 'w').write('x')",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Payload()}))
    with pytest.raises(UserError, match="not a valid CIFAR batch"):
        load_dataset("cifar10", "test", root=tmp_path)
    import os

    assert not os.path.exists("/tmp/co_ssl_pwned")


def test_stl10_undoes_column_major_storage(tmp_path):
    images = write_stl10(tmp_path)
    ds = load_dataset("stl10", "test", root=tmp_path)
    assert torch.equal(ds.images, torch.from_numpy(images))
    assert ds.labels.tolist() == [0, 1, 2]


def test_imagefolder_converts_modes_and_shares_class_indices(tmp_path):
    write_image_folder(tmp_path)
    train = load_dataset("imagefolder", "train", root=tmp_path, image_size=24)
    val = load_dataset("imagefolder", "val", root=tmp_path, image_size=24)
    assert train.classes == val.classes == ("cat", "dog")
    assert len(train) == 8
    images, labels = next(iterate_batches(train, 8))
    assert images.shape == (8, 3, 24, 24) and images.dtype == torch.uint8
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4


def test_imagefolder_marks_undecodable_files(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / "val" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    val = load_dataset("imagefolder", "val", root=tmp_path, image_size=16)
    labels = [val[i][1] for i in range(len(val))]
    assert labels.count(UNDECODABLE) == 1


def test_tiny_imagenet_val_annotations(tmp_path):
    write_image_folder(tmp_path, classes=("n01", "n02"))
    val = tmp_path / "val"
    import shutil

    shutil.rmtree(val)
    (val / "images").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (64, 64), (1, 2, 3)).save(val / "images" / "val_0.JPEG")
    Image.new("RGB", (64, 64), (4, 5, 6)).save(val / "images" / "val_1.JPEG")
    (val / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n")
    ds = load_dataset("imagefolder", "val", root=tmp_path, image_size=64)
    assert [ds[i][1] for i in range(2)] == [1, 0]
    assert (ds[0][0][:, 0, 0].int() - torch.tensor([1, 2, 3])).abs().max() <= 2  # JPEG is lossy


def test_empty_imagefolder_is_a_user_error(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "val" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="no images"):
        load_dataset("imagefolder", "train", root=tmp_path)
