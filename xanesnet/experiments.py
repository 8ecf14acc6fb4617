"""What the experiment scripts share: where the data and the cache are, the fixed splits, CV, stamped reports.

- :func:`shared_data` finds the reference data (``$XANESNET_SHARED_DATA``, else
  ``../shared/data`` beside the repository); :func:`cache_dir` the cache
  (``$XANESNET_CACHE``, else ``~/.cache/xanesnet``); :func:`fe_data_dir`
  extracts the Fe FDMNES archive there once.
- :func:`fixed_splits` gives the held-out test 10% (by name hash, never tuned
  on) and the fixed validation split of the rest used for model selection;
  :func:`cv_folds` gives K folds by name hash.
- :func:`write_report` writes a JSON report stamped with the git commit and
  the package version, atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xanesnet import __version__
from xanesnet.errors import XanesnetError

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
FE_ARCHIVE = "fe_k_fdmnes_train.tar.gz"
#: Seed of the fixed validation split of the Fe data (model selection); the held-out test split needs none.
VALIDATION_SEED = 12345


def shared_root() -> Path:
    """Where the shared reference data should be (it may be absent): ``$XANESNET_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("XANESNET_SHARED_DATA") or ROOT.parent / "shared" / "data")


def shared_data(*parts: str) -> Path:
    """A path under the shared reference data; :class:`XanesnetError` when it is not there."""
    path = shared_root().joinpath(*parts)
    if not path.exists():
        raise XanesnetError("the reference data are not here (expected ../shared/data beside the repository, "
                            "or set XANESNET_SHARED_DATA)", path=path)
    return path


def cache_dir() -> Path:
    """``$XANESNET_CACHE`` or ``~/.cache/xanesnet`` (outside the repository)."""
    from xanesnet.data.dataset import cache_root

    return cache_root()


def extract_once(archive: Path, name: str) -> Path:
    """Unpack ``archive`` into ``cache_dir()/name`` once (a marker file records completion); the directory."""
    out = cache_dir() / name
    marker = out / ".complete"
    if not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        marker.touch()
    return out


def unseen_fe_draws(exclude: Sequence[str], sizes: Sequence[int], *, seed: int = 0,
                    archive: str | os.PathLike | None = None) -> list[list[str]]:
    """Disjoint random draws (of ``sizes``) of Fe complex names outside ``exclude`` and outside the held-out 10%.

    For studies that train on a small set (e.g. the 99-molecule sample): one
    draw to choose settings on, another to report on, neither ever trained on.
    """
    from xanesnet.data.dataset import heldout_mask

    stems = sorted(p.stem for p in (fe_data_dir(archive) / "xyz").glob("*.xyz"))
    skip = set(exclude)
    outside = [n for n, held in zip(stems, heldout_mask(stems, 0.1)) if not held and n not in skip]
    if sum(sizes) > len(outside):
        raise XanesnetError(f"only {len(outside)} Fe complexes to draw {sum(sizes)} from")
    order = np.random.default_rng(seed).permutation(len(outside))
    ends = np.cumsum([0, *sizes])
    return [[outside[i] for i in order[a:b]] for a, b in zip(ends[:-1], ends[1:])]


def fe_subset(names: Sequence[str], config: Any, work: str | os.PathLike, *, cache: str | os.PathLike | None = None,
              archive: str | os.PathLike | None = None):
    """A :class:`~xanesnet.data.sources.TrainingSet` of these Fe complexes (convolved spectra), through links in ``work``."""
    from xanesnet.data.sources import build_training_set

    full, work = fe_data_dir(archive), Path(work)
    for sub, src, suffix in (("xyz", "xyz", ".xyz"), ("xanes", "xanes_conv", ".txt")):
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir(parents=True)
        for name in names:
            (work / sub / f"{name}{suffix}").symlink_to(full / src / f"{name}{suffix}")
    return build_training_set(work / "xyz", work / "xanes", config, cache=cache)


def fe_data_dir(archive: str | os.PathLike | None = None) -> Path:
    """The 4,079 Fe complexes (from ``archive``, default the shared one): a directory with ``xyz/``, ``xanes_conv/``
    and ``xanes_raw/``."""
    if archive is not None and not Path(archive).is_file():
        raise XanesnetError("no such archive", path=archive)
    out = extract_once(Path(archive) if archive is not None else shared_data(FE_ARCHIVE), "fe_k_fdmnes")
    return next(p for p in [out, *out.iterdir()] if (p / "xyz").is_dir())


@dataclass(frozen=True)
class Splits:
    """Boolean masks over a list of names: held-out test, and the fit / validation parts of the rest.

    ``order``: the indices of the rest in their seeded order, validation first
    (``order[:validation.sum()]``), then the fit part in an order that a
    growing subset (a learning curve) can take from the front.
    """

    test: np.ndarray
    fit: np.ndarray
    validation: np.ndarray
    order: np.ndarray


def fixed_splits(ids: Sequence[str], *, test_fraction: float = 0.1, val_fraction: float = 0.1,
                 seed: int = VALIDATION_SEED) -> Splits:
    """The held-out test split (by name hash) and a seeded validation split of the rest (as in model selection)."""
    from xanesnet.data.dataset import heldout_mask

    test = heldout_mask(ids, test_fraction)
    rest = np.flatnonzero(~test)
    perm = np.random.default_rng(seed).permutation(len(rest))
    validation = np.zeros(len(ids), bool)
    validation[rest[perm[: int(round(val_fraction * len(rest)))]]] = True
    return Splits(test=test, fit=~test & ~validation, validation=validation, order=rest[perm])


def cv_folds(ids: Sequence[str], k: int = 5) -> np.ndarray:
    """Fold number (0..k-1) of each name, by SHA-256 of the name: the same folds on any machine and order."""
    if k < 2:
        raise XanesnetError(f"cross-validation needs at least 2 folds, got {k}")
    return np.array([int(hashlib.sha256(f"cv:{i}".encode()).hexdigest(), 16) % k for i in ids], dtype=int)


def git_commit(root: Path = ROOT, paths: Sequence[str] = ()) -> str | None:
    """The repository's current commit (with ``+dirty`` when tracked files, or those under ``paths``, differ from
    it), or ``None`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *paths], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def stamp() -> dict[str, Any]:
    """Where a report came from: git commit and package version."""
    return {"commit": git_commit(), "xanesnet": __version__}


def write_report(path: str | os.PathLike, report: dict[str, Any]) -> Path:
    """Write a JSON report with a ``provenance`` stamp (commit, version), atomically."""
    from xanesnet.atomic import write_json

    return write_json(path, {**report, "provenance": stamp()})


def replace_between(path: str | os.PathLike, markers: tuple[str, str], body: str) -> bool:
    """Replace the text between two marker lines of a document (README, docs) with ``body``.

    Returns False, leaving the file alone, where either marker is missing.
    """
    path = Path(path)
    text = path.read_text()
    start, end = markers
    if start not in text or end not in text:
        return False
    before, rest = text.split(start, 1)
    path.write_text(before + start + body + end + rest.split(end, 1)[1])
    return True
