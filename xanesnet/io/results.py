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
chunk of molecules is written as a small ``.npz`` in ``OUT.h5.parts/`` (under
a temporary name, fsync'ed, then renamed: complete or absent). From time to
time (when the parts hold as many molecules as ``OUT.h5``, so the copying adds
up to about twice the final size) and at the end, the parts are merged:
``OUT.h5`` is copied to a temporary file, the parts' rows are appended to the
copy (a bounded number of rows at a time), the copy is fsync'ed and renamed
over ``OUT.h5``, and only then are the parts deleted. A kill at any moment
leaves ``OUT.h5`` as before or as after a merge, plus complete parts; a rerun
skips every molecule in either and merges the parts (rows already in
``OUT.h5`` are not added twice).
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
        with h5py.File(self.path, "r") as f:
            for g in f.values():
                names.update(g["ids"].asstr()[()])
        for part in self._part_files():
            for _, rows in _read_part(part):
                names.update(rows["ids"])
        return names

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("*.npz")) if self.parts.is_dir() else []

    # -- writing ------------------------------------------------------------------------------------
    def add(self, chunk: ChunkResult) -> None:
        """Write one chunk as a part file (atomically); merge when the parts hold as many rows as the file."""
        if not chunk.groups and not chunk.skipped:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        final = self.parts / f"{time.time_ns():020d}-{os.getpid()}.npz"
        tmp = self._temporary(final)
        arrays: dict[str, np.ndarray] = {}
        for name, (info, rows) in chunk.groups.items():
            width = max(len(a) for a in rows.absorber_atoms)
            atoms = np.full((len(rows), width), -1, dtype=np.int32)
            for i, a in enumerate(rows.absorber_atoms):
                atoms[i, :len(a)] = a
            arrays.update({f"{name}::attrs": np.array(json.dumps(info.attrs)), f"{name}::energy": info.energy,
                           f"{name}::ids": np.asarray(rows.ids, dtype=str), f"{name}::mean": rows.mean,
                           f"{name}::std": rows.std, f"{name}::trusted": rows.trusted, f"{name}::score": rows.score,
                           f"{name}::extrapolation": rows.extrapolation, f"{name}::absorber_atoms": atoms})
        if chunk.skipped:
            arrays["skipped::ids"] = np.asarray([i for i, _ in chunk.skipped], dtype=str)
            arrays["skipped::reasons"] = np.asarray([r for _, r in chunk.skipped], dtype=str)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            _commit(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self._pending_rows += chunk.n_molecules
        if self._pending_rows >= max(self.merge_min_rows, self._merged_rows):
            self.merge()

    def merge(self, *, batch_rows: int = 16384) -> int:
        """Append every pending part to a copy of the file, put the copy in place, delete the parts; rows added.

        Rows are appended ``batch_rows`` at a time, so memory stays bounded however many parts are pending.
        """
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
                pending: dict[str, list[dict[str, Any]]] = {}
                n_pending = 0
                for part in parts:
                    for name, rows in _read_part(part, set_aside=True):
                        keep = np.array([i not in known.setdefault(name, set()) for i in rows["ids"]], dtype=bool)
                        known[name].update(rows["ids"][keep])
                        if keep.any():
                            pending.setdefault(name, []).append({k: (v[keep] if k not in ("attrs", "energy") else v)
                                                                 for k, v in rows.items()})
                            n_pending += int(keep.sum())
                    if n_pending >= batch_rows:
                        added += self._append(f, pending)
                        pending, n_pending = {}, 0
                added += self._append(f, pending)
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

    def _append(self, f: Any, pending: dict[str, list[dict[str, Any]]]) -> int:
        """Append the collected rows of each group (one write per dataset); rows appended."""
        added = 0
        for name, pieces in pending.items():
            if name == "skipped":
                _append_skipped(_skipped_group(f), [(i, r) for p in pieces for i, r in zip(p["ids"], p["reasons"])])
            else:
                attrs = json.loads(str(pieces[0]["attrs"]))
                dest = f[name] if name in f else _create_group(f, name, GroupInfo(attrs, pieces[0]["energy"]))
                if _plain(dest.attrs.get("weights_sha256")) != attrs.get("weights_sha256"):
                    raise XanesnetError(f"model {name} changed between runs (other weights); use another output file",
                                        path=self.path)
                width = max(p["absorber_atoms"].shape[1] for p in pieces)
                atoms = np.concatenate([np.pad(p["absorber_atoms"], ((0, 0), (0, width - p["absorber_atoms"].shape[1])),
                                               constant_values=-1) for p in pieces])
                _append_arrays(dest, {**{k: np.concatenate([p[k] for p in pieces]) for k in _ROW_KEYS},
                                      "absorber_atoms": atoms})
            added += sum(len(p["ids"]) for p in pieces)
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


_ROW_KEYS = ("ids", "mean", "std", "trusted", "score", "extrapolation")


def _append_arrays(g: Any, arrays: dict[str, np.ndarray]) -> None:
    """Append rows to every dataset of a group (absorber_atoms widened when needed)."""
    n0, n = len(g["ids"]), len(arrays["ids"])
    if n == 0:
        return
    atoms = arrays["absorber_atoms"]
    if atoms.shape[1] > g["absorber_atoms"].shape[1]:
        g["absorber_atoms"].resize(atoms.shape[1], axis=1)
    elif atoms.shape[1] < g["absorber_atoms"].shape[1]:
        atoms = np.pad(atoms, ((0, 0), (0, g["absorber_atoms"].shape[1] - atoms.shape[1])), constant_values=-1)
    for key in (*_ROW_KEYS, "absorber_atoms"):
        value = atoms if key == "absorber_atoms" else arrays[key]
        d = g[key]
        d.resize(n0 + n, axis=0)
        d[n0:] = value.astype(object) if key == "ids" else value


def _read_part(part: Path, *, set_aside: bool = False) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The groups of one part file: (name, arrays); an unreadable part gives none (set aside when asked)."""
    try:
        with np.load(part, allow_pickle=False) as data:
            groups: dict[str, dict[str, np.ndarray]] = {}
            for key in data.files:
                name, field_name = key.split("::", 1)
                groups.setdefault(name, {})[field_name] = data[key]
    except (OSError, ValueError, EOFError) as exc:
        if set_aside:
            broken = part.with_name(part.name + ".broken")
            logger.warning("unreadable part %s (%s); set aside as %s", part, exc, broken.name)
            os.replace(part, broken)
        return []
    return list(groups.items())


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
