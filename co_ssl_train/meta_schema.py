"""The fields of a run's `meta.json` and the check every read applies to them.

`check_meta(meta, path)` looks at each field it knows: its type, and the shape of what is inside
(three finite means and three positive stds, a 64-digit hex digest, views with a size, a count and
a two-number scale, ...). The first problem becomes a one-line UserError that names the file and
the field, before any encoder is built from the record. `arch` and `normalization` are required;
the other fields are checked when present (older runs and hand-made ones may lack some), and keys
this version does not know are left alone.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

from co_ssl_train.errors import UserError


class _Bad(Exception):
    """A field's problem, said as what was expected (`check_meta` adds the file and field)."""


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def text(x: Any) -> None:
    if not isinstance(x, str) or not x:
        raise _Bad(f"must be a non-empty string, not {_show(x)}")


def boolean(x: Any) -> None:
    if not isinstance(x, bool):
        raise _Bad(f"must be true or false, not {_show(x)}")


def integer(low: int) -> Callable[[Any], None]:
    def check(x: Any) -> None:
        if not isinstance(x, int) or isinstance(x, bool) or x < low:
            raise _Bad(f"must be an integer >= {low}, not {_show(x)}")
    return check


def finite(x: Any) -> None:
    if not _number(x) or not math.isfinite(x):
        raise _Bad(f"must be a finite number, not {_show(x)}")


def optional(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(x: Any) -> None:
        if x is not None:
            check(x)
    return run


def mapping(fields: dict[str, Callable[[Any], None]] | None = None, required: tuple[str, ...] = (),
            values: Callable[[Any], None] | None = None) -> Callable[[Any], None]:
    """A JSON object whose `fields` (when present; `required` ones always) pass their checks, and
    whose every value passes `values`."""
    def check(x: Any) -> None:
        if not isinstance(x, dict):
            raise _Bad(f"must be an object, not {_show(x)}")
        for key in required:
            if key not in x:
                raise _Bad(f"lacks {key!r}")
        for key, value in x.items():
            inner = (fields or {}).get(key, values)
            if inner is not None:
                try:
                    inner(value)
                except _Bad as e:
                    raise _Bad(f"entry {key!r} {e}") from None
    return check


def sequence(item: Callable[[Any], None], length: int | None = None) -> Callable[[Any], None]:
    def check(x: Any) -> None:
        if not isinstance(x, list) or (length is not None and len(x) != length):
            raise _Bad(f"must be a list of {length or 'any number of'} entries, not {_show(x)}")
        for i, value in enumerate(x):
            try:
                item(value)
            except _Bad as e:
                raise _Bad(f"item {i} {e}") from None
    return check


def positive(x: Any) -> None:
    finite(x)
    if x <= 0:
        raise _Bad(f"must be positive, not {_show(x)}")


def fraction(x: Any) -> None:
    finite(x)
    if not 0 < x <= 1:
        raise _Bad(f"must be in (0, 1], not {_show(x)}")


def scalar(x: Any) -> None:
    if not (x is None or isinstance(x, (str, bool)) or (_number(x) and math.isfinite(x))):
        raise _Bad(f"must be a string, number, boolean or null, not {_show(x)}")


def sha256(x: Any) -> None:
    if not isinstance(x, str) or not re.fullmatch(r"[0-9a-f]{64}", x):
        raise _Bad(f"must be 64 lowercase hex digits, not {_show(x)}")


def representation(x: Any) -> None:
    mapping({"kind": text, "layer": text, "readout": text}, required=("kind",))(x)
    if x["kind"] == "bag-of-patches":
        mapping({"patch_size": integer(1), "stride": integer(1), "train_patches_per_image": integer(1)},
                required=("patch_size", "stride"))(x)


def metric(x: Any) -> None:
    """A logged metric: a finite number or null, or a list of names (the files that did not decode)."""
    if isinstance(x, list):
        sequence(text)(x)
    else:
        optional(finite)(x)


def _show(x: Any) -> str:
    text_ = repr(x)
    return text_ if len(text_) <= 40 else text_[:37] + "..."


NORMALIZATION = mapping({"mean": sequence(finite, 3), "std": sequence(positive, 3)}, required=("mean", "std"))
# Encoder.describe() (a ViT's adds its token layout)
ENCODER = mapping({"arch": text, "arch_kwargs": mapping(values=scalar), "local_layer": text,
                   "normalization": NORMALIZATION, "num_features": integer(1), "receptive_field": optional(integer(1)),
                   "family": text, "patch_size": integer(1), "img_size": integer(1), "prefix_tokens": integer(0),
                   "register_tokens": integer(0), "class_token": boolean, "readout": text,
                   "global_features": integer(1)})

FIELDS: dict[str, Callable[[Any], None]] = {
    "arch": mapping({"name": text, "kwargs": mapping(values=scalar)}, required=("name",)),
    "normalization": NORMALIZATION,
    "local_layer": text,
    "method": text,
    "config": mapping(),
    "dataset": mapping({"name": text, "split": text, "num_classes": integer(1), "image_size": integer(1)}),
    "input_size": integer(1),
    "epoch": integer(0),
    "step": integer(0),
    "total_steps": integer(0),
    "finished": boolean,
    "metrics": mapping(values=metric),
    "exported": text,
    "receptive_field": optional(integer(1)),
    "local_branch": optional(mapping({"weight": finite, "form": text, "grid": integer(0), "layer": text,
                                      "shared_heads": boolean, "mlp_after_pool": boolean, "target": text,
                                      "stage": text, "positions": integer(1)})),
    "representation": representation,
    "encoder": ENCODER,
    "views": sequence(mapping({"size": integer(1), "count": integer(1), "scale": sequence(fraction, 2)},
                              required=("size", "count"))),
    "distributed": mapping({"world_size": integer(1), "backend": optional(text)}),
    "encoder_sha256": sha256,
    "package_version": text,
    "torch_version": text,
    "git_commit": optional(text),
    "created": text,
    "updated": text,
}
REQUIRED = ("arch", "normalization")


def check_meta(meta: dict[str, Any], path: Path) -> None:
    """Raise a one-line UserError naming `path` and the first field of `meta` that is missing or malformed."""
    for key in REQUIRED:
        if key not in meta:
            raise UserError(f"{path} lacks {key!r}; the run directory is damaged")
    for key, check in FIELDS.items():
        if key in meta:
            try:
                check(meta[key])
            except _Bad as e:
                raise UserError(f"{path}: field {key!r} {e}; the run directory is damaged") from None
