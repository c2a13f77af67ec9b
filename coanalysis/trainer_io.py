"""The torch-free part of what coanalysis takes from the trainer: its error type, atomic writers
and version.

The render side (`coanalysis.figures`, `coanalysis.report`) and the results files import these
from here, so rendering a report from results JSON never imports torch. Everything else coanalysis
takes from `co_ssl_train` comes through `coanalysis.trainer`, which re-exports these too.
"""

from __future__ import annotations

from co_ssl_train import __version__ as package_version
from co_ssl_train.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from co_ssl_train.errors import UserError

__all__ = ["UserError", "atomic_path", "package_version", "write_bytes_atomic", "write_json_atomic",
           "write_text_atomic"]
