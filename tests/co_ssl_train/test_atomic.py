"""Atomic writes leave either the old file or the new one, and the new one has the permissions any
other file the user creates would have (mkstemp alone would make it readable by its owner only)."""

from __future__ import annotations

import os
import stat

import pytest

from co_ssl_train.atomic import atomic_path, write_json_atomic, write_text_atomic


def test_written_files_follow_the_umask(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = tmp_path / "sub" / "meta.json"
    write_json_atomic(path, {"a": float("nan")})
    assert path.read_text() == '{\n  "a": null\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # 0o644 under the usual umask 022


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.html"
    write_text_atomic(path, "old")

    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
