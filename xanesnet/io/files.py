"""Writing output files safely: an exclusive lock per output, durable renames, unique input names."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from xanesnet.errors import XanesnetError


class ExclusiveLock:
    """Hold an exclusive ``flock`` on ``OUT.lock`` while writing ``OUT`` (the kernel releases it if the process dies).

    The lock file is removed on the way out, so a finished run leaves nothing behind.

    ``busy`` is the error message when another process holds it; the error names ``OUT``.
    """

    def __init__(self, target: str | os.PathLike, busy: str):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + ".lock")
        self.busy = busy
        self.fd = -1

    def __enter__(self) -> "ExclusiveLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise XanesnetError(self.busy, path=self.target) from None
            try:  # a lock file unlinked by the run that held it (see __exit__) is not the lock any more: take the new one
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    return self
            except FileNotFoundError:
                pass
            os.close(self.fd)

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)  # removed while still held: a finished run leaves no clutter
        os.close(self.fd)  # closing releases the lock


def durable_replace(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it to ``final`` (atomic on POSIX), fsync the directory: ``final`` is then complete on disk."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_unique_names(files: list[Path]) -> None:
    """Refuse two input files with the same stem: results are keyed by it."""
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise XanesnetError(f"two inputs share the name {path.stem!r} ({seen[path.stem]} and {path}); "
                                "molecules are keyed by file name", path=path)
        seen[path.stem] = path
