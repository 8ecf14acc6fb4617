"""Writing output files safely: an exclusive lock per output, durable renames, unique input names.

Nothing is ever half-written, shared or lost. Every output goes to a temporary name unique to the process and the call
(``.NAME.<pid>.<random>.tmp`` beside it, so concurrent runs into one
directory never share one) and is renamed into place only when complete.
A directory (a saved model) replaces an older one by an atomic exchange of
the two names, so a kill at any moment leaves the old or the new model at
the path, never neither. Temporary files of processes that no longer exist
are swept away by the next write beside them.

Failures of the file system (a read-only or missing location, a full disk)
become one :class:`XanesnetError` naming the path; whatever the failed write
left is removed first.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

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


logger = logging.getLogger(__name__)

_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_REASONS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOENT: "no such directory", errno.ENOTDIR: "a path component is not a directory"}


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``: ``.NAME.<pid>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_error(exc: OSError, path: str | os.PathLike) -> XanesnetError:
    """The one-line error for a failed write of ``path``."""
    reason = _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return XanesnetError(f"cannot write here: {reason}", path=path)


@contextlib.contextmanager
def writing(path: str | os.PathLike, *, min_free: int = 0) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is renamed to ``path``.

    On any failure the temporary file is removed; an ``OSError`` becomes a
    :class:`XanesnetError` naming ``path``. ``min_free`` (bytes) is checked
    against the free space first.
    """
    path = Path(path)
    prepare_directory(path.parent, min_free=min_free)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(exc, path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a unique temporary file and a rename."""
    with writing(path, min_free=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_all(paths: list[Path], write: Callable[[int, Path], None], *, min_free: int = 0) -> list[Path]:
    """All or nothing: ``write(i, tmp)`` each file to a temporary name, then rename them all into place.

    If any write fails, every temporary file is removed and no final file is
    touched (renames need no space, so a full disk stops the run before them).
    """
    if not paths:
        return []
    for directory in {p.parent for p in paths}:
        prepare_directory(directory, min_free=min_free)
    tmps = [temporary_path(p) for p in paths]
    current = paths[0]
    try:
        for i, (path, tmp) in enumerate(zip(paths, tmps)):
            current = path
            write(i, tmp)
        for path, tmp in zip(paths, tmps):
            current = path
            os.replace(tmp, path)
    except OSError as exc:
        raise write_error(exc, current) from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return paths


def prepare_directory(directory: str | os.PathLike, *, min_free: int = 0) -> Path:
    """Create ``directory`` if needed, sweep stale temporary files, and check it has ``min_free`` bytes free."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, directory) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise XanesnetError("cannot write here: permission denied or read-only", path=directory)
    sweep_stale(directory)
    if min_free:
        check_free_space(directory, min_free)
    return directory


def check_writable(path: str | os.PathLike) -> None:
    """Fail early, without creating anything, when ``path`` (a file or directory to be written) cannot be."""
    path = Path(path).absolute()
    parent = path if path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise XanesnetError("cannot write here: a path component is not a directory", path=parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise XanesnetError("cannot write here: permission denied or read-only", path=parent)


def check_free_space(directory: str | os.PathLike, nbytes: int) -> None:
    """Refuse to start a write of about ``nbytes`` into ``directory`` when the disk has less free (plus 1 MB)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < nbytes + 2**20:
        raise XanesnetError(f"cannot write here: no space left on the device ({free / 2**20:.1f} MB free, "
                            f"about {nbytes / 2**20:.1f} MB needed)", path=directory)


def sweep_stale(directory: str | os.PathLike) -> None:
    """Remove temporary files and directories left in ``directory`` by processes that no longer run."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = _TMP.match(entry.name)
        if match is None or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            logger.info("removed %s, left by an interrupted run", entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the names ``a`` and ``b`` in one atomic step (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


def replace_directory(new: Path, path: Path) -> None:
    """Put the complete directory ``new`` at ``path``, replacing what is there only once ``new`` is in place.

    The two names are exchanged atomically and the old directory (now at
    ``new``'s temporary name) is removed after; where the system cannot
    exchange names, the old one is renamed aside first (a brief window).
    """
    if not path.exists():
        os.rename(new, path)
        return
    if exchange(new, path):
        shutil.rmtree(new, ignore_errors=True)
        return
    aside = temporary_path(path)
    os.rename(path, aside)
    os.rename(new, path)
    shutil.rmtree(aside, ignore_errors=True)
