"""The command line of `co-ssl-train train`, made from `TrainConfig`: one flag per field, grouped by
the field's `group` metadata, each numeric flag parsed with its range from `config.RANGES` (nan, inf and
values out of range are a one-line usage error before any work), and the config built back from
the parsed arguments."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from co_ssl_train.config import RANGES, TrainConfig, flag_of
from co_ssl_train.options import FINITE, INTEGER


def _base_type(tp: Any) -> type:
    """`int | None` -> int, `str` -> str."""
    if isinstance(tp, (types.UnionType,)) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def option_type(name: str, tp: type) -> Any:
    """The argparse `type=` of field `name`: its range from `RANGES`, else any finite number (strings as is)."""
    if name in RANGES:
        return RANGES[name]
    return {float: FINITE, int: INTEGER}.get(tp, tp)


def add_config_args(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """Add one flag per dataclass field, grouped by the field's `group` metadata."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        flag = flag_of(f)
        tp = _base_type(hints[f.name])
        default_text = f" (default: {f.default})"
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                               help=meta["help"] + default_text)
        else:
            group.add_argument(flag, dest=f.name, type=option_type(f.name, tp), default=f.default,
                               metavar=f.name.upper(), choices=meta.get("choices"), help=meta["help"] + default_text)


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
