"""Where dataset files are downloaded to when no `--data-root` is given: `default_data_dir()`.

`$CO_SSL_DATA`, else `~/.cache/co-ssl/data`. (coanalysis keeps its feature cache elsewhere, under
`$CO_SSL_CACHE`; the two are different folders for different things.)
"""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """The folder downloads go to when no `--data-root` is given."""
    return Path(os.environ.get("CO_SSL_DATA", Path.home() / ".cache" / "co-ssl" / "data"))
