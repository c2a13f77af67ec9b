"""The torch-free part of what coanalysis takes from the trainer: its error type, atomic writers,
option-value parsing (`co_ssl_train.options`), the defaults of training options a run stores only
when changed (`newer_defaults`) and version.

The render side (`coanalysis.figures`, `coanalysis.report`) and the results files import these
from here, so rendering a report from results JSON never imports torch. Everything else coanalysis
takes from `co_ssl_train` comes through `coanalysis.models.trainer`, which re-exports these too.
"""

from __future__ import annotations

from co_ssl_train import __version__ as package_version
from co_ssl_train.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from co_ssl_train.config import newer_defaults
from co_ssl_train.errors import UserError
from co_ssl_train.options import (COUNT, FINITE, INTEGER, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, SEED, UNIT,
                                  UNIT_OPEN_LOW, Number, NumberList, OneLineParser, writable_dir, writable_file)

__all__ = ["COUNT", "FINITE", "INTEGER", "NON_NEGATIVE", "NON_NEGATIVE_INT", "POSITIVE", "SEED", "UNIT",
           "UNIT_OPEN_LOW", "Number", "NumberList", "OneLineParser", "UserError", "atomic_path", "newer_defaults",
           "package_version",
           "writable_dir", "writable_file", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]
