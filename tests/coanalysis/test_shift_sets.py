"""Distribution-shift sets: the shipped class lists and their mapping, layouts on tiny hand-made folders."""

from __future__ import annotations

import pytest

from coanalysis.data.shift_sets import CORRUPTIONS_3DCC, SETS, class_list, get_set, scan, subset_mapping
from coanalysis.models.trainer_io import UserError

IMAGENET = class_list("imagenet-1k.txt")


def test_imagenet_list_is_1000_sorted_unique_wnids():
    assert len(IMAGENET) == len(set(IMAGENET)) == 1000 and list(IMAGENET) == sorted(IMAGENET)
    assert all(w.startswith("n") and len(w) == 9 and w[1:].isdigit() for w in IMAGENET)
    assert IMAGENET[0] == "n01440764" and IMAGENET[-1] == "n15075141"  # tench ... toilet tissue


@pytest.mark.parametrize("name", ["imagenet-r", "imagenet-a"])
def test_200_class_lists_are_unique_imagenet_ids(name):
    ids = class_list(SETS[name].classes)
    assert len(ids) == len(set(ids)) == 200 and set(ids) <= set(IMAGENET)


def test_r_and_a_are_different_subsets():
    r, a = set(class_list("imagenet-r.txt")), set(class_list("imagenet-a.txt"))
    assert r != a and 0 < len(r & a) < 200
    assert "n01498041" in r and "n01498041" in a  # stingray, in both


def test_mapping_restricts_a_1000_class_probe_to_the_200():
    mapping = subset_mapping(IMAGENET, get_set("imagenet-r"))
    assert mapping["restricted"] and len(mapping["kept"]) == 200
    assert all(IMAGENET[k] == c for k, c in zip(mapping["kept"], mapping["classes"]))
    full = subset_mapping(IMAGENET, get_set("imagenet-sketch"))
    assert not full["restricted"] and full["kept"] == list(range(1000))
    with pytest.raises(UserError, match="probe has no class"):
        subset_mapping(["a", "b"], get_set("imagenet-a"))


def _tiny(root, folders):
    for folder in folders:
        (root / folder).mkdir(parents=True)
        (root / folder / "x.JPEG").write_bytes(b"")
        (root / folder / "notes.txt").write_text("skipped: not an image")


def test_layouts_on_tiny_folders(tmp_path):
    r_ids = class_list("imagenet-r.txt")
    _tiny(tmp_path / "r", r_ids[:2])
    assert [w for _, w in scan(tmp_path / "r", get_set("imagenet-r"))] == list(r_ids[:2])
    _tiny(tmp_path / "v2", ["0", "999"])
    assert [w for _, w in scan(tmp_path / "v2", get_set("imagenet-v2"))] == [IMAGENET[0], IMAGENET[999]]
    _tiny(tmp_path / "3dcc" / "fog_3d" / "3", [IMAGENET[5]])
    assert scan(tmp_path / "3dcc", get_set("imagenet-3dcc"), "fog_3d", 3)[0][1] == IMAGENET[5]
    assert len(CORRUPTIONS_3DCC) == 12


@pytest.mark.parametrize("folders,name,message", [(["n00000000"], "imagenet-r", "is not one of the set's 200"),
                                                  (["1000"], "imagenet-v2", "not a class index"),
                                                  ([], "imagenet-sketch", "no images")])
def test_bad_folders_are_refused(tmp_path, folders, name, message):
    (tmp_path / "set").mkdir()
    _tiny(tmp_path / "set", folders)
    with pytest.raises(UserError, match=message):
        scan(tmp_path / "set", get_set(name))
    with pytest.raises(UserError, match="unknown distribution-shift set"):
        get_set("imagenet-z")
