"""The real Fe K-edge data (4,079 complexes, FDMNES), shared by the training, selection and benchmark scripts.

Reads ``../shared/data/fe_k_fdmnes_train.tar.gz`` (or ``--data``), extracts it
once into a cache directory outside the repository, and splits off the fixed
held-out 10% (SHA-256 of the name; see ``xanesnet.data.dataset.heldout_mask``).
"""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ARCHIVE = SHARED / "fe_k_fdmnes_train.tar.gz"


def cache_dir() -> Path:
    root = os.environ.get("XANESNET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xanesnet")
    return Path(root)


def fe_data_dir(archive: Path = ARCHIVE) -> Path:
    """Directory with ``xyz/``, ``xanes_conv/`` and ``xanes_raw/``; exits with a reason when the archive is absent."""
    if not archive.is_file():
        sys.exit(f"skipped: the Fe reference data {archive} is not here (expected ../shared/data beside the repository)")
    out = cache_dir() / "fe_k_fdmnes"
    marker = out / ".complete"
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        marker.touch()
    return next(p for p in [out, *out.iterdir()] if (p / "xyz").is_dir())
