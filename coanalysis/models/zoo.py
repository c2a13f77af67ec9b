"""`zoo:NAME` checkpoint specs: download once into `$CO_SSL_CACHE/zoo`, resume, verify, then load as a file.

`resolve_zoo_spec("zoo:dino-r50")` returns the path of the verified file. The download goes to
`<file>.part` with a progress bar; an interrupted one is resumed with an HTTP Range request (a
server that ignores the range restarts it). A finished file is checked against the published
SHA-256 (or the published digest prefix); when none is published the digest and size are recorded
in `checksums.json` on first download and checked on every later use. A file that does not match
is renamed `<file>.rejected` and never loaded. Without network the error says where to put the
file by hand; a file placed there is verified the same way. urllib only (stdlib); torch-free.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from coanalysis.models.trainer_io import UserError, write_json_atomic
from coanalysis.models.zoo_table import ZOO, ZooEntry

PREFIX = "zoo:"
CHUNK = 1 << 20
TIMEOUT_S = 30.0
RECORD = "checksums.json"


def zoo_dir() -> Path:
    """`$CO_SSL_CACHE/zoo` (default `~/.cache/co-ssl/zoo`)."""
    return Path(os.environ.get("CO_SSL_CACHE", Path.home() / ".cache" / "co-ssl")).expanduser() / "zoo"


def get_entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise UserError(f"unknown zoo checkpoint {name!r}; run 'coanalysis zoo' for the list "
                        f"({len(ZOO)} names, e.g. {', '.join(list(ZOO)[:3])})")
    return ZOO[name]


def is_zoo_spec(spec: Any) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def resolve_zoo_spec(spec: str, *, progress: bool = True, cache: Path | None = None) -> Path:
    """`zoo:NAME` -> the verified local file (downloaded first when absent)."""
    return fetch(get_entry(spec[len(PREFIX):]), cache or zoo_dir(), progress=progress)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _records(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RECORD).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise UserError(f"{folder / RECORD} is not readable JSON; delete it to record the digests again") from None
    return data if isinstance(data, dict) else {}


def recorded(entry: ZooEntry, folder: Path) -> dict[str, Any] | None:
    """What the first download recorded for `entry` (sha256, size_bytes, url), if anything."""
    return _records(folder).get(entry.filename)


def verify(entry: ZooEntry, path: Path, folder: Path) -> str:
    """The file's SHA-256 after checking it against the published or recorded digest; a mismatch
    renames the file `<name>.rejected` and raises UserError. Nothing known: the digest is recorded."""
    digest = sha256_file(path)
    known = recorded(entry, folder)
    expected = entry.sha256 or (known or {}).get("sha256")
    source = "published" if entry.sha256 else "recorded on first download"
    bad = (expected is not None and digest != expected) or \
          (entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix))
    if bad:
        rejected = path.with_name(path.name + ".rejected")
        os.replace(path, rejected)
        want = expected or entry.sha256_prefix + "..."
        raise UserError(f"zoo:{entry.name}: SHA-256 {digest[:16]}... does not match the "
                        f"{source if expected else 'published'} {want[:16]}...; the file was moved to {rejected} "
                        "and will not be loaded")
    if known is None:
        records = _records(folder)
        records[entry.filename] = {"sha256": digest, "size_bytes": path.stat().st_size, "url": entry.url,
                                   "note": "recorded on first download" if entry.sha256 is None else "published"}
        write_json_atomic(folder / RECORD, records)
    return digest


def _offline(entry: ZooEntry, dest: Path, reason: str) -> UserError:
    return UserError(f"cannot download zoo:{entry.name} ({reason}); without network, download {entry.url} "
                     f"elsewhere and put it at {dest}")


def download(url: str, part: Path, *, progress: bool = True, timeout: float = TIMEOUT_S) -> None:
    """Append the rest of `url` to `part` (a Range request when `part` has bytes); raises OSError-likes
    (URLError, timeouts, IncompleteRead) for the caller to report; `part` keeps what arrived."""
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part is already complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                     disable=not progress, leave=False) as bar:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def fetch(entry: ZooEntry, folder: Path, *, progress: bool = True) -> Path:
    """The verified file of `entry` in `folder`, downloaded (or resumed) when absent."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.filename
    if not dest.exists():
        part = dest.with_name(dest.name + ".part")
        try:
            download(entry.url, part, progress=progress)
        except urllib.error.HTTPError as e:
            raise UserError(f"cannot download zoo:{entry.name}: {entry.url} answered HTTP {e.code} "
                            f"{e.reason}") from None
        except (http.client.IncompleteRead, ConnectionError) as e:
            raise UserError(f"zoo:{entry.name}: the download stopped after {part.stat().st_size} bytes "
                            f"({type(e).__name__}); run again to resume it") from None
        except (urllib.error.URLError, socket.timeout, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise _offline(entry, dest, f"no network? {reason}") from None
        os.replace(part, dest)
    verify(entry, dest, folder)
    return dest
