"""Atomic file writes: a reader (or a crash) never sees half a file, only the old one or the new one."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextmanager
def _atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Yield a temporary file beside path; on success it replaces path, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # mkstemp makes it owner-only; results are meant to be shared
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to path atomically, creating its folder if needed."""
    with _atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text to path atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """Save an array in .npy format (no pickles) to path atomically."""
    with _atomic_file(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)


def finite_or_null(obj: Any) -> Any:
    """obj with every NaN or infinite float as None: JSON has no such numbers (json.dumps would write `NaN`,
    which strict JSON readers reject)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write obj as indented JSON (keys in insertion order; NaN and infinities as null) to path atomically."""
    atomic_write_text(path, json.dumps(finite_or_null(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing, unreadable or malformed one is a one-line error naming it."""
    from musicgenre.errors import MusicGenreError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MusicGenreError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MusicGenreError(f"{path}: not a readable JSON file ({exc})") from None
