"""Atomic file writes: write to a temporary file in the same folder, then rename.

A rename within one file system is atomic on POSIX, so a reader (or a re-run after a
crash) sees either the previous file or the complete new one, never a partial file.
"""

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


@functools.cache
def _current_umask() -> int:
    # os.umask can only be read by setting it, so read it once rather than on every write.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; results are shared, so apply the usual 0666 & ~umask.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    _atomic_replace(Path(path), lambda handle: handle.write(data))


def write_text_atomic(path: Path | str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write obj as indented JSON; NaN and infinity are written as null."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_parquet_atomic(path: Path | str, frame: pd.DataFrame) -> None:
    _atomic_replace(Path(path), lambda handle: frame.to_parquet(handle, index=False))


def read_json(path: Path | str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _finite(obj: Any) -> Any:
    """Replace NaN and infinite floats by None, because JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj
