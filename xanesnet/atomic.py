"""The one way files are written: to a temporary name beside the target, then renamed into place.

A reader never sees a half-written file, and an interrupted write leaves the
old file (or none) behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """A unique temporary path beside ``path``; renamed to ``path`` when the block ends without an error.

    ``suffix`` is kept at the end of the temporary name (for writers that add or check one, e.g. ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically."""
    import json

    return write_text(path, json.dumps(data, indent=1))


def write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Write a compressed ``.npz`` atomically."""
    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)
