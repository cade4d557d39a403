"""Atomic writes: complete files only, readable like any other file."""

import os
import stat

from harness.results.io import read_json, write_json_atomic, write_text_atomic


def test_atomic_write_mode_follows_umask(tmp_path):
    path = tmp_path / "summary.json"

    write_json_atomic(path, {"a": 1})

    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_atomic_write_replaces_without_temp_files(tmp_path):
    path = tmp_path / "status.json"

    write_text_atomic(path, "old")
    write_json_atomic(path, {"nan": float("nan")})

    assert read_json(path) == {"nan": None}
    assert [child.name for child in tmp_path.iterdir()] == ["status.json"]
