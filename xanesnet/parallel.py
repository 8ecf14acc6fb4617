"""Shared pieces of the parallel runners (``simulate``, ``predict --out FILE.h5``): Dask import, progress bar, worker
processes tied to their parent."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

from xanesnet.errors import XanesnetError

DASK_HINT = "dask.distributed is not installed; install it with: pip install xanesnet[cluster]"


def import_distributed() -> Any:
    """``dask.distributed``, or a one-line error with the install hint."""
    try:
        import distributed
    except ImportError:
        raise XanesnetError(DASK_HINT) from None
    return distributed


@contextmanager
def dask_client(scheduler: Any) -> Iterator[tuple[Any, int]]:
    """A Dask client for ``scheduler`` and how many tasks to keep in flight (two per worker thread).

    ``scheduler`` is an address or a cluster object (a client is made and closed
    here) or a ``distributed.Client`` (used as it is, left open).
    """
    distributed = import_distributed()
    own_client = not isinstance(scheduler, distributed.Client)
    client = distributed.Client(scheduler) if own_client else scheduler
    try:
        yield client, max(1, 2 * sum(client.nthreads().values()))
    finally:
        if own_client:
            client.close()


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar on stderr (disabled: no output)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="mol", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


#: glibc's ``mallopt`` parameter number of M_TOP_PAD (malloc.h).
_M_TOP_PAD = -2


def keep_freed_heap(megabytes: int = 64) -> bool:
    """Ask glibc to keep ``megabytes`` of freed heap for reuse instead of handing it back to the system at once.

    Batched featurisation allocates and frees some MB of temporaries per block
    of molecules; by default glibc returns that memory after each block and the
    next block faults the pages in again, which costs as much system time as
    the arithmetic itself. A process-wide setting, for the command line and the
    worker processes (not for library callers); returns False (and changes
    nothing) where the C library has no ``mallopt``.
    """
    import ctypes

    try:
        return bool(ctypes.CDLL(None).mallopt(_M_TOP_PAD, megabytes << 20))
    except (OSError, AttributeError):
        return False


def tie_to_parent(parent: int) -> None:
    """Pool-worker initializer: the worker (and the FEFF processes it starts) end when ``parent`` ends.

    The worker leads its own process group; on Linux the kernel sends it
    SIGTERM when the parent dies (even by kill -9), elsewhere a watchdog
    thread notices the parent is gone; either kills the whole group.
    """
    import signal
    import threading

    os.setpgid(0, 0)

    def end_group(*_: Any) -> None:
        if os.getpgid(0) == os.getpid():  # never the parent's group
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    signal.signal(signal.SIGTERM, end_group)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        end_group()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        end_group()

    threading.Thread(target=watch, daemon=True, name="xanesnet-parent-watch").start()


def kill_workers(pool: Any) -> None:
    """Kill the pool's worker processes (and their FEFF runs: each worker leads its own process group)."""
    import signal

    for process in list((getattr(pool, "_processes", None) or {}).values()):
        for kill in (os.killpg, os.kill):  # the group exists once the worker has started
            try:
                kill(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
