"""Decoding image files: EXIF orientation, decompression bombs, and folders whose files do not
all decode (counted, named, stored; the split named is the folder read)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from co_ssl_train.data.decode import RefusedImage, decode_resize_crop, open_rgb


def _photo(path, w: int = 40, h: int = 20, orientation: int | None = None) -> None:
    """A w x h JPEG whose left half is red and right half blue, with an EXIF orientation tag."""
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[:, : w // 2, 0] = 255
    pixels[:, w // 2:, 2] = 255
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied(tmp_path):
    _photo(tmp_path / "upright.jpg")
    _photo(tmp_path / "sideways.jpg", orientation=6)  # stored landscape, shown rotated 90 degrees clockwise
    assert open_rgb(str(tmp_path / "upright.jpg")).size == (40, 20)
    turned = np.asarray(open_rgb(str(tmp_path / "sideways.jpg")))
    assert turned.shape == (40, 20, 3)  # portrait: the red half is now on top
    assert turned[5, 10, 0] > 200 and turned[35, 10, 2] > 200
    image = decode_resize_crop(str(tmp_path / "sideways.jpg"), 16)
    assert image.shape == (3, 16, 16) and image[0, 0, 8] > 200 and image[2, 15, 8] > 200


def test_decompression_bombs_are_refused_per_file_with_a_note(tmp_path, monkeypatch, capsys):
    _photo(tmp_path / "big.jpg", 64, 64)
    _photo(tmp_path / "small.jpg", 8, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warning above 1000 px, error above 2000
    with pytest.raises(RefusedImage):
        open_rgb(str(tmp_path / "big.jpg"))
    assert decode_resize_crop(str(tmp_path / "big.jpg"), 8) is None
    assert f"note: {tmp_path / 'big.jpg'} refused" in capsys.readouterr().out
    assert decode_resize_crop(str(tmp_path / "small.jpg"), 8).shape == (3, 8, 8)


def test_folder_with_undecodable_files_names_them_and_the_split_it_read(tiny_runs, tmp_path, capsys):
    from coanalysis.cli import main

    root = tmp_path / "folder"
    for split in ("train", "test"):  # no val/: the evaluation split falls back to test/
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(6):
                _photo(root / split / cls / f"{i}.jpg", 32, 32)
    (root / "test" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    main(["probe", "--ckpt", str(tiny_runs["byol"]), "--dataset", "imagefolder", "--data-root", str(root),
          "--out", str(tmp_path / "res"), "--no-progress", "--no-knn"])
    out = capsys.readouterr().out
    assert f"note: 1 of 13 files of imagefolder test did not decode and were skipped: {root}/test/a/broken.jpg" in out
    cells = json.loads((tmp_path / "res" / "tiny-byol" / "probe.json").read_text())["cells"]
    (key, cell), = cells.items()
    assert key.startswith("test:") and cell["data"]["split"] == "test" and cell["data"]["source"] == str(root / "test")
    assert cell["undecodable_count"] == 1 and cell["undecodable"] == [str(root / "test" / "a" / "broken.jpg")]
    assert cell["n"] == 12
