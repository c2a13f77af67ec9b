"""Distribution-shift test sets as pre-rendered folders: their layouts, class lists and the mapping
from a 1000-class ImageNet probe to each set's classes. Torch-free.

- ImageNet-R and ImageNet-A: `<root>/<wnid>/*`, 200 classes each; the probe's logits are restricted
  to those classes (the argmax over the 200), as in the authors' eval.py (hendrycks/imagenet-r,
  hendrycks/natural-adv-examples, whose lists are shipped in `coanalysis/data/classlists`).
- ImageNet-Sketch: `<root>/<wnid>/*`, all 1000 classes.
- ImageNet-V2: `<root>/<k>/*` with k the class index 0..999 in the sorted-wnid order.
- ImageNet-3DCC: `<root>/<corruption>/<severity>/<wnid>/*`, RobustBench's 12 corruptions x 5 severities.

`subset_mapping` records which probe classes a set keeps and how its labels map to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from coanalysis.models.trainer_io import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CORRUPTIONS_3DCC = ("near_focus", "far_focus", "bit_error", "color_quant", "flash", "fog_3d", "h265_abr", "h265_crf",
                    "iso_noise", "low_light", "xy_motion_blur", "z_motion_blur")
SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class ShiftSet:
    name: str
    layout: str  # "wnid", "index" or "corruption/severity/wnid"
    classes: str  # class list file in coanalysis/data/classlists


SETS: dict[str, ShiftSet] = {
    "imagenet-r": ShiftSet("imagenet-r", "wnid", "imagenet-r.txt"),
    "imagenet-a": ShiftSet("imagenet-a", "wnid", "imagenet-a.txt"),
    "imagenet-sketch": ShiftSet("imagenet-sketch", "wnid", "imagenet-1k.txt"),
    "imagenet-v2": ShiftSet("imagenet-v2", "index", "imagenet-1k.txt"),
    "imagenet-3dcc": ShiftSet("imagenet-3dcc", "corruption/severity/wnid", "imagenet-1k.txt"),
}


@lru_cache(maxsize=None)
def class_list(file: str) -> tuple[str, ...]:
    """The WordNet ids of a shipped class list, in file order."""
    text = resources.files("coanalysis.data").joinpath("classlists", file).read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def get_set(name: str) -> ShiftSet:
    if name not in SETS:
        raise UserError(f"unknown distribution-shift set {name!r}; choose from: {', '.join(SETS)}")
    return SETS[name]


def subset_mapping(probe_classes: list[str] | tuple[str, ...], shift: ShiftSet) -> dict:
    """Which probe outputs a set keeps: {"kept": [probe index of each set class], "classes": [wnids],
    "restricted": whether the argmax runs over a subset}. Set classes the probe lacks are refused."""
    wanted = class_list(shift.classes)
    position = {c: i for i, c in enumerate(probe_classes)}
    missing = [c for c in wanted if c not in position]
    if missing:
        raise UserError(f"{shift.name}: the probe has no class {missing[0]} ({len(missing)} of {len(wanted)} missing); "
                        "its classes must be ImageNet WordNet ids (probe on ImageNet-1k)")
    return {"set": shift.name, "classes": list(wanted), "kept": [position[c] for c in wanted],
            "restricted": len(wanted) < len(probe_classes), "source": f"coanalysis/data/classlists/{shift.classes}"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan(root: Path, shift: ShiftSet, corruption: str | None = None,
         severity: int | None = None) -> list[tuple[Path, str]]:
    """(image path, wnid) of every image of the set (of one corruption and severity for 3DCC), sorted."""
    if shift.layout == "corruption/severity/wnid":
        if corruption not in CORRUPTIONS_3DCC or severity not in SEVERITIES:
            raise UserError(f"{shift.name} needs a corruption of {', '.join(CORRUPTIONS_3DCC)} and a severity in 1..5")
        root = root / corruption / str(severity)
    if not root.is_dir():
        raise UserError(f"{shift.name}: folder {root} does not exist (expected the layout <{shift.layout}>/<images>)")
    known = set(class_list(shift.classes))
    wnids = class_list("imagenet-1k.txt")
    out: list[tuple[Path, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if shift.layout == "index":
            if not folder.name.isdigit() or not 0 <= int(folder.name) < len(wnids):
                raise UserError(f"{shift.name}: folder {folder} is not a class index 0..999")
            wnid = wnids[int(folder.name)]
        else:
            wnid = folder.name
            if wnid not in known:
                raise UserError(f"{shift.name}: folder {folder} is not one of the set's {len(known)} WordNet ids")
        out += [(p, wnid) for p in _images(folder)]
    if not out:
        raise UserError(f"{shift.name}: no images under {root}")
    return out
