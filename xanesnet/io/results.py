"""Predicted spectra of a whole structure library in one HDF5 file, written in chunks, safe to kill and rerun.

Layout of ``OUT.h5``::

    /                   attrs: format, format_version, request (JSON: spectra, absorber, model, mc_samples),
                               xanesnet_version
    /<model>/           one group per model used, named after its directory (e.g. ``fe-k-xanes``)
        attrs           model (directory), spectrum, config (the model's config.json as JSON text),
                        weights_sha256, energy_scale ("absolute" or "relative to E0"), uncertainty_mode,
                        trust_threshold, absorber (the request: an index, an element, or "auto" for the one
                        Ti-Zn metal)
        ids             (n,)    molecule names (structure file stems)
        energy          (m,)    eV
        mean, std       (n, m)  float32
        trusted         (n,)    bool (False throughout when the model gives no error bar)
        score           (n,)    float32 uncertainty score (NaN without an error bar)
        extrapolation   (n,)    float32: training standard deviations beyond the training range (NaN: unknown)
        absorber_atoms  (n, k)  int32: the absorbing atoms (0-based), padded with -1; several: the spectrum is
                                their average
    /skipped/           ids (k,), reasons (k,): molecules skipped as bad input (a rerun does not retry them)

Crash safety. ``OUT.h5`` is never opened for writing in place. Each finished
chunk of molecules is written as its own small HDF5 file in ``OUT.h5.parts/``
(under a temporary name, fsync'ed, then renamed: complete or absent). From
time to time (when the parts hold as many molecules as ``OUT.h5``, so the
copying adds up to about twice the final size) and at the end, the parts are
merged: ``OUT.h5`` is copied to a temporary file, the parts are appended to
the copy, the copy is fsync'ed and renamed over ``OUT.h5``, and only then are
the parts deleted. A kill at any moment leaves ``OUT.h5`` as before or as
after a merge, plus complete parts; a rerun skips every molecule in either and
merges the parts (rows already in ``OUT.h5`` are not added twice).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.files import durable_replace

logger = logging.getLogger(__name__)

FORMAT = "xanesnet-predictions"
FORMAT_VERSION = 1
SUFFIXES = (".h5", ".hdf5")
#: HDF5 format 1.8 or later: attributes larger than 64 kB (a model's config) are stored densely.
LIBVER = "v108"
_ROW_CHUNK = 1024
_SPECTRUM_CHUNK = 64  # rows per HDF5 chunk of mean and std (~60 kB for 226 points)
_FLOAT_ROWS = ("score", "extrapolation")


@dataclass
class ModelRows:
    """Predictions of one model for some molecules (rows in the same order everywhere)."""

    ids: list[str]
    mean: np.ndarray
    std: np.ndarray
    trusted: np.ndarray
    score: np.ndarray
    extrapolation: np.ndarray
    absorber_atoms: list[list[int]]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class GroupInfo:
    """What is the same for every row of one model's group: attributes and the energy grid (eV)."""

    attrs: dict[str, Any]
    energy: np.ndarray


@dataclass
class ChunkResult:
    """One chunk of molecules: rows per model group, and the molecules skipped as bad input (name, reason)."""

    groups: dict[str, tuple[GroupInfo, ModelRows]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_molecules(self) -> int:
        names = {i for _, rows in self.groups.values() for i in rows.ids}
        return len(names) + len(self.skipped)


@dataclass
class ModelResults:
    """One model's group of a results file, as arrays (see the module docstring for each field)."""

    name: str
    ids: np.ndarray
    energy: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    trusted: np.ndarray
    score: np.ndarray
    extrapolation: np.ndarray
    absorber_atoms: list[np.ndarray]
    attrs: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The model's saved configuration (its config.json)."""
        return json.loads(self.attrs["config"])


def is_results_path(path: str | os.PathLike) -> bool:
    """Whether an output path names an HDF5 results file (by its suffix)."""
    return Path(path).suffix.lower() in SUFFIXES


def parts_dir(path: str | os.PathLike) -> Path:
    """Sidecar directory of finished chunks not yet merged into ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".parts")


def read_results(path: str | os.PathLike) -> dict[str, ModelResults]:
    """Every model group of a results file as arrays, by group name; chunks not yet merged are left out (logged)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise XanesnetError("no such file", path=path)
    pending = len(list(parts_dir(path).glob("*.h5"))) if parts_dir(path).is_dir() else 0
    if pending:
        logger.warning("%s: %d finished chunk(s) are not merged yet; rerun the same command to complete the file", path, pending)
    try:
        with h5py.File(path, "r") as f:
            _check_format(f, path)
            out = {}
            for name, g in f.items():
                if name == "skipped":
                    continue
                out[name] = ModelResults(
                    name=name, ids=g["ids"].asstr()[()], energy=g["energy"][()], mean=g["mean"][()], std=g["std"][()],
                    trusted=g["trusted"][()], score=g["score"][()], extrapolation=g["extrapolation"][()],
                    absorber_atoms=[a[a >= 0] for a in g["absorber_atoms"][()]], attrs={k: _plain(v) for k, v in g.attrs.items()})
            return out
    except OSError as exc:
        raise XanesnetError(f"cannot read HDF5 file ({exc})", path=path) from None


def read_skipped(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Molecules recorded as skipped (bad input) in a results file: (name, reason)."""
    import h5py

    with h5py.File(path, "r") as f:
        if "skipped" not in f:
            return []
        return list(zip(f["skipped/ids"].asstr()[()], f["skipped/reasons"].asstr()[()]))


class ResultStore:
    """Writer of a results file: :meth:`add` one chunk at a time, :meth:`merge` at the end (see the module docstring).

    ``header`` (the request) is stored as root attributes; an existing file
    written for another request is refused rather than mixed.
    """

    def __init__(self, path: str | os.PathLike, header: dict[str, str], *, merge_min_rows: int = 8192):
        self.path = Path(path)
        self.header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **header}
        self.merge_min_rows = merge_min_rows
        self.parts = parts_dir(self.path)
        self._pending_rows = 0
        self._merged_rows = 0
        self._ensure()

    # -- state --------------------------------------------------------------------------------------
    def _ensure(self) -> None:
        import h5py

        self._clean_stale()
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as f:
                    _check_format(f, self.path)
                    found = {k: _plain(v) for k, v in f.attrs.items()}
                    self._merged_rows = sum(len(g["ids"]) for g in f.values())
            except OSError as exc:
                raise XanesnetError(f"cannot open HDF5 file ({exc})", path=self.path) from None
            diff = [k for k in self.header if k not in ("format", "format_version") and found.get(k) != self.header[k]]
            if diff:
                details = "; ".join(f"{k}: file has {found.get(k)}, asked for {self.header[k]}" for k in diff)
                raise XanesnetError(f"was written for another request ({details}); use another output file", path=self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temporary(self.path)
        try:
            with h5py.File(tmp, "w", libver=LIBVER) as f:
                f.attrs.update(self.header)
            _commit(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _clean_stale(self) -> None:
        """Remove temporary files of earlier, killed runs (the lock guarantees none is being written now)."""
        for tmp in [*self.path.parent.glob(f".{self.path.name}.*.tmp"), *self.parts.glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)

    def done_ids(self) -> set[str]:
        """Names of every molecule in the file or its pending parts (predicted or skipped)."""
        import h5py

        names: set[str] = set()
        for file in [self.path, *self._part_files()]:
            try:
                with h5py.File(file, "r") as f:
                    for g in f.values():
                        names.update(g["ids"].asstr()[()])
            except OSError:
                continue  # an unreadable part is set aside by the next merge
        return names

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("*.h5")) if self.parts.is_dir() else []

    # -- writing ------------------------------------------------------------------------------------
    def add(self, chunk: ChunkResult) -> None:
        """Write one chunk as a part file (atomically); merge when the parts hold as many rows as the file."""
        import h5py

        if not chunk.groups and not chunk.skipped:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        final = self.parts / f"{time.time_ns():020d}-{os.getpid()}.h5"
        tmp = self._temporary(final)
        try:
            with h5py.File(tmp, "w", libver=LIBVER) as f:
                for name, (info, rows) in chunk.groups.items():
                    g = _create_group(f, name, info)
                    _append_rows(g, rows)
                if chunk.skipped:
                    _append_skipped(_skipped_group(f), chunk.skipped)
            _commit(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self._pending_rows += chunk.n_molecules
        if self._pending_rows >= max(self.merge_min_rows, self._merged_rows):
            self.merge()

    def merge(self) -> int:
        """Append every pending part to a copy of the file, put the copy in place, delete the parts; rows added."""
        import h5py

        parts = self._part_files()
        if not parts:
            return 0
        tmp = self._temporary(self.path)
        added = 0
        try:
            shutil.copyfile(self.path, tmp)
            with h5py.File(tmp, "r+") as f:
                known = {name: set(g["ids"].asstr()[()]) for name, g in f.items()}
                for part in parts:
                    added += self._merge_part(f, part, known)
            _commit(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        for part in parts:
            part.unlink(missing_ok=True)
        try:
            self.parts.rmdir()
        except OSError:
            pass  # not empty: a part set aside as broken, or one written meanwhile
        self._merged_rows += added
        self._pending_rows = 0
        logger.info("merged %d part(s), %d rows, into %s", len(parts), added, self.path)
        return added

    def _merge_part(self, f: Any, part: Path, known: dict[str, set[str]]) -> int:
        import h5py

        try:
            src = h5py.File(part, "r")
        except OSError as exc:
            broken = part.with_name(part.name + ".broken")
            logger.warning("unreadable part %s (%s); set aside as %s", part, exc, broken.name)
            os.replace(part, broken)
            return 0
        added = 0
        with src:
            for name, g in src.items():
                ids = g["ids"].asstr()[()]
                seen = known.setdefault(name, set())
                keep = np.array([i not in seen for i in ids], dtype=bool)
                if not keep.any():
                    continue
                if name == "skipped":
                    _append_skipped(_skipped_group(f), list(zip(ids[keep], g["reasons"].asstr()[()][keep])))
                else:
                    dest = f[name] if name in f else _create_group(f, name, GroupInfo(dict(g.attrs), g["energy"][()]))
                    if _plain(dest.attrs.get("weights_sha256")) != _plain(g.attrs.get("weights_sha256")):
                        raise XanesnetError(f"model {name} changed between runs (other weights); use another output file",
                                            path=self.path)
                    _append_rows(dest, _rows_from(g, keep))
                seen.update(ids[keep])
                added += int(keep.sum())
        return added

    @staticmethod
    def _temporary(path: Path) -> Path:
        """A unique temporary name beside ``path`` (never shared by two processes)."""
        return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


# --------------------------------------------------------------------------------------------------
def _check_format(f: Any, path: Path) -> None:
    if _plain(f.attrs.get("format")) != FORMAT:
        raise XanesnetError(f"not a xanesnet predictions file (format is {_plain(f.attrs.get('format'))!r})", path=path)


def _plain(value: Any) -> Any:
    """HDF5 attribute values as Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _create_group(f: Any, name: str, info: GroupInfo) -> Any:
    import h5py

    g = f.create_group(name)
    g.attrs.update(info.attrs)
    m = len(info.energy)
    g.create_dataset("energy", data=np.asarray(info.energy, dtype=np.float64))
    g.create_dataset("ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(_ROW_CHUNK,))
    for key in ("mean", "std"):
        g.create_dataset(key, shape=(0, m), maxshape=(None, m), dtype=np.float32, chunks=(_SPECTRUM_CHUNK, max(m, 1)))
    g.create_dataset("trusted", shape=(0,), maxshape=(None,), dtype=bool, chunks=(_ROW_CHUNK,))
    for key in _FLOAT_ROWS:
        g.create_dataset(key, shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(_ROW_CHUNK,))
    g.create_dataset("absorber_atoms", shape=(0, 1), maxshape=(None, None), dtype=np.int32, chunks=(_ROW_CHUNK, 1),
                     fillvalue=-1)
    return g


def _append_rows(g: Any, rows: ModelRows) -> None:
    n0, n = len(g["ids"]), len(rows)
    if n == 0:
        return
    width = max(g["absorber_atoms"].shape[1], max(len(a) for a in rows.absorber_atoms))
    atoms = np.full((n, width), -1, dtype=np.int32)
    for i, a in enumerate(rows.absorber_atoms):
        atoms[i, :len(a)] = a
    g["absorber_atoms"].resize(width, axis=1)
    for key, value in (("ids", np.asarray(rows.ids, dtype=object)), ("mean", rows.mean), ("std", rows.std),
                       ("trusted", rows.trusted), ("score", rows.score), ("extrapolation", rows.extrapolation),
                       ("absorber_atoms", atoms)):
        d = g[key]
        d.resize(n0 + n, axis=0)
        d[n0:] = value


def _rows_from(g: Any, keep: np.ndarray) -> ModelRows:
    return ModelRows(ids=list(g["ids"].asstr()[()][keep]), mean=g["mean"][()][keep], std=g["std"][()][keep],
                     trusted=g["trusted"][()][keep], score=g["score"][()][keep], extrapolation=g["extrapolation"][()][keep],
                     absorber_atoms=[a[a >= 0] for a in g["absorber_atoms"][()][keep]])


def _skipped_group(f: Any) -> Any:
    import h5py

    if "skipped" in f:
        return f["skipped"]
    g = f.create_group("skipped")
    for key in ("ids", "reasons"):
        g.create_dataset(key, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(_ROW_CHUNK,))
    return g


def _append_skipped(g: Any, skipped: list[tuple[str, str]]) -> None:
    n0 = len(g["ids"])
    for key, values in (("ids", [s[0] for s in skipped]), ("reasons", [s[1] for s in skipped])):
        g[key].resize(n0 + len(skipped), axis=0)
        g[key][n0:] = np.asarray(values, dtype=object)


_commit = durable_replace  # module-level name: tests patch it to kill mid-write
