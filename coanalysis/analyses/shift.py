"""Distribution shift: probe accuracy on pre-rendered ImageNet-R, -A, -Sketch, -V2 and -3DCC folders.

`root` holds one folder per set, named as in `coanalysis.data.shift_sets.SETS` (`imagenet-r/<wnid>/`,
`imagenet-v2/<0..999>/`, `imagenet-3dcc/<corruption>/<severity>/<wnid>/`, ...). One cell per set,
and per (corruption, severity) for 3DCC (`imagenet-3dcc fog_3d s3`). The probe must be the
1000-class ImageNet probe (its classes are the WordNet ids of the training folders); for the
200-class sets (R, A) the prediction is the argmax over those 200 logits, as in the authors'
evaluation code, and the cell records the kept probe indices and the class list it came from.
Images are decoded, resized and centre-cropped as the evaluation split is (`FolderDataset`);
undecodable files are skipped and counted. `n` takes a seeded subset of each cell's images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from coanalysis.features.extraction import EvalData, to_input
from coanalysis.results.stats import correctness_record
from coanalysis.data.shift_sets import CORRUPTIONS_3DCC, SEVERITIES, get_set, scan, subset_mapping
from coanalysis.models.trainer import DatasetInfo, FolderDataset

SETS_3DCC = "imagenet-3dcc"


@dataclass(frozen=True)
class ShiftProtocol:
    root: str = ""
    sets: tuple[str, ...] = ()
    corruptions: tuple[str, ...] = CORRUPTIONS_3DCC  # of 3DCC
    severities: tuple[int, ...] = SEVERITIES  # of 3DCC
    n: int | None = None  # images per cell: a seeded subset (None: all)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sets": list(self.sets), "corruptions": list(self.corruptions),
                "severities": list(self.severities),
                "readout": "linear probe; 200-class sets: argmax over the set's classes",
                "preprocessing": "as the evaluation split (shorter side resized, centre crop)"}


def cells(protocol: ShiftProtocol) -> list[str]:
    keys = []
    for name in protocol.sets:
        if name == SETS_3DCC:
            keys += [f"{name} {c} s{s}" for c in protocol.corruptions for s in protocol.severities]
        else:
            keys.append(name)
    return keys


def parse_key(key: str) -> tuple[str, str | None, int | None]:
    """'imagenet-3dcc fog_3d s3' -> ('imagenet-3dcc', 'fog_3d', 3); 'imagenet-r' -> ('imagenet-r', None, None)."""
    parts = key.split()
    if len(parts) == 3:
        return parts[0], parts[1], int(parts[2].removeprefix("s"))
    return key, None, None


@torch.no_grad()
def run_cell(ctx, protocol: ShiftProtocol, key: str) -> dict[str, Any]:
    name, corruption, severity = parse_key(key)
    shift = get_set(name)
    folder = Path(protocol.root) / name
    probe_classes = ctx.data.dataset.classes
    mapping = subset_mapping(probe_classes, shift)
    position = {c: i for i, c in enumerate(probe_classes)}
    items = scan(folder, shift, corruption, severity)
    eval_info = ctx.data.dataset.info
    info = DatasetInfo(name=name, split=key, num_classes=len(probe_classes), image_size=eval_info.image_size,
                       source=str(folder), notes=eval_info.notes)
    data = EvalData.from_dataset(FolderDataset([(str(p), position[w]) for p, w in items], probe_classes, info),
                                 protocol.n, protocol.seed)
    kept = torch.tensor(mapping["kept"], device=ctx.device)
    correct, ids = [], []
    for images, labels, positions in data.batches(ctx.batch_size, ctx.workers):
        logits = ctx.logits(to_input(images, ctx.device))
        pred = kept[logits[:, kept].argmax(1)].cpu()
        correct.append(pred == labels)
        ids.append(data.indices[positions])
    right = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    total = len(right)
    record = correctness_record(right.numpy(), torch.cat(ids).numpy()) if total else {}
    return {"set": name, "corruption": corruption, "severity": severity, "accuracy": int(right.sum()) / max(total, 1),
            "n": total, **record, "files": len(items), "undecodable": len(data) - total, "classes": len(mapping["kept"]),
            "restricted": mapping["restricted"], "class_list": mapping["source"],
            "kept_probe_indices": mapping["kept"] if mapping["restricted"] else None, "subset_seed": protocol.seed}
