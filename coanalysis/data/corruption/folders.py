"""Pre-rendered folders `<root>/<corruption>/<severity>/<class>/<file>` (ImageNet-C, Tiny-ImageNet-C).

A category level `<root>/<group>/<corruption>/...` is accepted. Files are matched to the
evaluation subset by (class folder, file name); when none match (the evaluation set has no such
files), a seeded subset of the set's own files is used. Images already at the evaluation size are
used as they are (no resize or crop); others are resized to it (recorded). Grey, CMYK and palette
files are converted to RGB; a file that does not decode is skipped, counted and named.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coanalysis.results.corruption_names import MAX_NAMED
from coanalysis.data.corruption.outcome import Corrupted, EvalImages, Missing, seeded_subset, to_nchw
from coanalysis.data.corruption.pool import chunk_size, decode_files, run_tasks, start_pool
from coanalysis.models.trainer import UserError


def cell_dir(root: Path, corruption: str, severity: int) -> Path | None:
    """`<root>[/<group>]/<corruption>/<severity>`, or None when the set has no such folder."""
    for base in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
        folder = base / corruption / str(severity)
        if folder.is_dir():
            return folder
    return None


def class_files(folder: Path) -> dict[tuple[str, str], Path]:
    """(class folder, file name) -> path of every regular file under `folder/<class>/`."""
    files = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files[(class_dir.name, path.name)] = path
    return files


class FolderSource:
    """ImageNet-C / Tiny-ImageNet-C folders `<root>/<corruption>/<severity>/<class>/<file>`."""

    kind = "folders"

    def __init__(self, ctx: EvalImages, root: Path, n: int | None, workers: int):
        self.ctx, self.root, self.n, self.workers = ctx, Path(root).expanduser().resolve(), n, workers
        self.classes = list(getattr(ctx.data.dataset, "classes", ()))
        self._listing: dict[tuple[str, int], dict] = {}

    def prepare(self) -> None:
        self.ctx.images(self.n)
        if self.workers > 1:
            start_pool(self.workers)

    def _files(self, corruption: str, severity: int) -> dict[tuple[str, str], Path] | None:
        key = (corruption, severity)
        if key not in self._listing:
            folder = cell_dir(self.root, corruption, severity)
            self._listing[key] = {"folder": folder, "files": class_files(folder) if folder is not None else None}
        return self._listing[key]["files"]

    def _select(self, files: dict[tuple[str, str], Path]) -> tuple[list[Path], list[int], dict[str, Any]]:
        """The files to classify with their labels, matched to the evaluation subset when possible."""
        index = {c: i for i, c in enumerate(self.classes)}
        samples = getattr(self.ctx.data.dataset, "samples", None)
        if samples is not None:
            subset = self.ctx.images(self.n)
            paths, labels, unmatched = [], [], 0
            for pos, label in zip(subset.positions.tolist(), subset.labels.tolist()):
                name = Path(samples[int(self.ctx.data.indices[pos])][0]).name
                path = files.get((self.classes[label], name))
                if path is None:
                    unmatched += 1
                else:
                    paths.append(path)
                    labels.append(label)
            if paths:
                return paths, labels, {"alignment": "files of the evaluation subset, by class and file name",
                                       "unmatched": unmatched}
        keys = sorted(files)
        unknown = sorted({c for c, _ in keys if c not in index})
        keys = [k for k in keys if k[0] in index]
        if not keys:
            raise UserError(f"the class folders of {self.root} (e.g. {unknown[0] if unknown else '?'}) are not classes "
                            f"of the evaluation dataset {self.ctx.data.info.name}; pass the matching --dataset")
        chosen = seeded_subset(len(keys), self.n or len(self.ctx.data), self.ctx.data.seed)
        keys = [keys[i] for i in chosen.tolist()]
        notes: dict[str, Any] = {"alignment": f"seeded subset (seed {self.ctx.data.seed}) of the set's files"}
        if unknown:
            notes["unknown_class_folders"] = unknown[:MAX_NAMED]
        return [files[k] for k in keys], [index[c] for c, _ in keys], notes

    def identity(self, corruption: str, severity: int) -> dict[str, Any]:
        files = self._files(corruption, severity) or {}
        listing = hashlib.sha256()
        for (c, name), path in sorted(files.items()):
            st = path.stat()
            listing.update(f"{c}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return {"kind": "prerendered-folders", "version": 1, "root": str(self.root), "corruption": corruption,
                "severity": severity, "files": listing.hexdigest(), "data": self.ctx.data.describe(), "n": self.n}

    def produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        files = self._files(corruption, severity)
        if files is None:
            return Missing(f"no folder {corruption}/{severity} under {self.root}")
        if not files:
            return Missing(f"{self._listing[(corruption, severity)]['folder']} holds no class folders with files")
        paths, labels, notes = self._select(files)
        size = self.ctx.data.info.image_size
        chunk = chunk_size(len(paths), size, self.workers)
        tasks = [([str(p) for p in paths[i:i + chunk]], size) for i in range(0, len(paths), chunk)]
        images, ok, resized = [], [], []
        for arr, good, original in run_tasks(decode_files, tasks, self.workers):
            images.append(arr)
            ok += good
            resized += original
        keep = torch.tensor(ok, dtype=torch.bool)
        bad = [str(p.relative_to(self.root)) for p, good in zip(paths, ok) if not good]
        notes.update({"files": len(paths), "undecodable_count": len(bad), "undecodable": bad[:MAX_NAMED]})
        sizes = sorted({tuple(r) for r, good in zip(resized, ok) if good and r is not None})
        if sizes:
            notes["resized_from"] = [list(s) for s in sizes[:MAX_NAMED]]
            notes["resized_to"] = size
        return Corrupted(to_nchw(np.concatenate(images))[keep], torch.tensor(labels, dtype=torch.long)[keep], notes)
