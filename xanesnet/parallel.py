"""Shared pieces of the parallel runners (``simulate``, ``predict --out FILE.h5``): Dask import, progress bar."""

from __future__ import annotations

import sys
from typing import Any

from xanesnet.errors import XanesnetError

DASK_HINT = "dask.distributed is not installed; install it with: pip install xanesnet[cluster]"


def import_distributed() -> Any:
    """``dask.distributed``, or a one-line error with the install hint."""
    try:
        import distributed
    except ImportError:
        raise XanesnetError(DASK_HINT) from None
    return distributed


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar on stderr (disabled: no output)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="mol", file=sys.stderr, disable=not enabled, dynamic_ncols=True)
