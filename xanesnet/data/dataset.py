"""Assemble training data: pair structures with spectra, featurise with a cache, stack spectra.

Structures and spectra are paired by file stem; every unmatched file is
reported by name. Features are cached in HDF5 keyed by the descriptor's
settings hash, the absorber choice and the SHA-1 of each file's bytes, so a
changed setting or edited file can never reuse stale features.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from xanesnet.descriptors.base import Descriptor
from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum, read_spectrum
from xanesnet.io.structures import Structure, absorber_sites, read_structure, resolve_absorber

logger = logging.getLogger(__name__)

SPECTRUM_SUFFIXES = (".txt", ".dat", ".csv", ".xmu", ".out", ".xdi", ".prj")


@dataclass
class Pairing:
    """Files paired by stem, and those left over on either side."""

    stems: list[str]
    structures: list[Path]
    spectra: list[Path]
    structures_only: list[Path] = field(default_factory=list)
    spectra_only: list[Path] = field(default_factory=list)

    def report(self) -> str:
        """One line per kind of leftover, naming up to ten files."""
        lines = []
        for label, files in (("structures without a spectrum", self.structures_only),
                             ("spectra without a structure", self.spectra_only)):
            if files:
                names = ", ".join(p.name for p in files[:10]) + (", ..." if len(files) > 10 else "")
                lines.append(f"{len(files)} {label}: {names}")
        return "\n".join(lines)


def list_files(directory: str | os.PathLike, suffixes: Sequence[str]) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise XanesnetError("no such directory", path=directory)
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def pair_by_stem(structure_files: Sequence[Path], spectrum_files: Sequence[Path]) -> Pairing:
    """Match structures and spectra by file stem (the name without its suffix)."""
    by_stem = {}
    for p in spectrum_files:
        if p.stem in by_stem:
            raise XanesnetError(f"two spectra share the name {p.stem!r} ({by_stem[p.stem].name}, {p.name})", path=p.parent)
        by_stem[p.stem] = p
    seen: dict[str, Path] = {}
    for p in structure_files:
        if p.stem in seen:
            raise XanesnetError(f"two structures share the name {p.stem!r} ({seen[p.stem].name}, {p.name})", path=p.parent)
        seen[p.stem] = p
    stems = sorted(set(seen) & set(by_stem))
    pairing = Pairing(stems=stems, structures=[seen[s] for s in stems], spectra=[by_stem[s] for s in stems],
                      structures_only=sorted(p for s, p in seen.items() if s not in by_stem),
                      spectra_only=sorted(p for s, p in by_stem.items() if s not in seen))
    if not stems:
        raise XanesnetError(f"no structure and spectrum share a file name ({len(structure_files)} structures, {len(spectrum_files)} spectra)")
    return pairing


@dataclass
class FeatureSet:
    """Descriptor rows of structure files.

    One row per file, except with ``all_sites``: then one row per absorbing
    atom, ``site_of[row]`` is the file's position in ``ids`` and ``sites[i]``
    lists the absorbing atoms of file ``i``.
    """

    ids: list[str]
    x: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    structures: list[Structure] | None = None
    site_of: np.ndarray | None = None
    sites: list[list[int]] | None = None


def featurize_files(paths: Sequence[str | os.PathLike], descriptor: Descriptor, *, absorber: int | str | None = None,
                    cache: str | os.PathLike | None = None, skip_bad: bool = False, progress: bool = False,
                    keep_structures: bool = False, all_sites: bool = False, batch_size: int = 1024) -> FeatureSet:
    """Descriptor vectors of many structure files, in the given order.

    Parameters
    ----------
    paths
        Structure files.
    descriptor
        The descriptor to apply.
    absorber
        Passed to :func:`resolve_absorber` for every file.
    cache
        HDF5 feature cache (created if missing); ``None`` disables caching.
    skip_bad
        Skip files that cannot be read or featurised (they are returned in
        ``skipped`` with the reason) instead of raising on the first one.
    keep_structures
        Also return the parsed structures (they are then parsed even when cached).
    all_sites
        One row per absorbing atom: every atom of the element when ``absorber``
        is an element symbol (see :func:`absorber_sites`); not with ``cache``.
    batch_size
        Files read and featurised together (one :meth:`Descriptor.create_batch`
        call); memory grows with it, not with the number of files.
    """
    from tqdm.auto import tqdm

    if all_sites and cache is not None:
        raise ValueError("all_sites does not use the feature cache")
    key = f"{descriptor.settings_hash()}/absorber={absorber if absorber is not None else 'auto'}"
    store = FeatureCache(cache) if cache is not None else None
    cached = store.load(key) if store is not None else {}
    result = FeatureSet(ids=[], x=np.empty((0, descriptor.n_features)), structures=[] if keep_structures else None,
                        sites=[] if all_sites else None)
    rows: list[np.ndarray] = []
    new: dict[str, np.ndarray] = {}
    paths = [Path(p) for p in paths]
    with tqdm(total=len(paths), desc="featurize", unit="mol", disable=not progress, leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            rows += _featurize_chunk(chunk, descriptor, absorber, cached, new, result, skip_bad=skip_bad,
                                     keep_structures=keep_structures, all_sites=all_sites, hashed=store is not None)
            bar.update(len(chunk))
    if store is not None and new:
        store.save(key, new)
    if result.skipped:
        logger.warning("skipped %d of %d structures", len(result.skipped), len(paths))
    if rows:
        result.x = np.vstack(rows)
    if all_sites:
        result.site_of = np.repeat(np.arange(len(result.ids)), [len(a) for a in result.sites])
    return result


def _featurize_chunk(paths: list[Path], descriptor: Descriptor, absorber: int | str | None, cached: dict[str, np.ndarray],
                     new: dict[str, np.ndarray], result: FeatureSet, *, skip_bad: bool, keep_structures: bool,
                     all_sites: bool, hashed: bool) -> list[np.ndarray]:
    """Read a chunk of files, featurise the uncached ones in one batch, append to ``result``; the rows, in order."""
    readable = []  # (path, structure, absorbing atoms, cached vector, digest)
    for p in paths:
        try:
            raw = _read_bytes(p)
            digest = hashlib.sha1(raw).hexdigest() if hashed else None
            vec = cached.get(digest) if digest is not None else None
            structure = read_structure(p, raw) if vec is None or keep_structures else None
            atoms = None
            if all_sites:
                atoms = absorber_sites(structure, absorber)
            elif vec is None:
                atoms = [resolve_absorber(structure, absorber)]
        except XanesnetError as exc:
            if not skip_bad:
                raise
            result.skipped.append((str(p), str(exc)))
            continue
        readable.append((p, structure, atoms, vec, digest))
    todo = [(s, a) for _, s, atoms, vec, _ in readable if vec is None or all_sites for a in atoms]
    x, errors = descriptor.create_batch([s for s, _ in todo], [a for _, a in todo])
    rows, k = [], 0
    for p, structure, atoms, vec, digest in readable:
        if vec is None or all_sites:
            n = len(atoms)
            error = next((e for e in errors[k:k + n] if e is not None), None)
            vec = x[k:k + n] if all_sites else x[k]
            k += n
            if error is not None:
                if not skip_bad:
                    raise error
                result.skipped.append((str(p), str(error)))
                continue
            if digest is not None:
                new[digest] = vec
        result.ids.append(p.stem)
        rows.append(vec)
        if all_sites:
            result.sites.append(atoms)
        if keep_structures:
            result.structures.append(structure)
    return rows


def _read_bytes(path: Path) -> bytes:
    from xanesnet.io.structures import MAX_FILE_BYTES, check_input_file

    check_input_file(path, MAX_FILE_BYTES)  # a regular file of sane size (never a device or a pipe)
    return path.read_bytes()


class FeatureCache:
    """Feature vectors in one HDF5 file: ``/<settings hash>/absorber=<spec>/<sha1 of file>``.

    The cache is disposable: an unreadable file is set aside and rebuilt.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self, key: str) -> dict[str, np.ndarray]:
        import h5py

        if not self.path.exists():
            return {}
        try:
            with h5py.File(self.path, "r") as f:
                if key not in f:
                    return {}
                group = f[key]
                return {name: group[name][()] for name in group}
        except (OSError, KeyError) as exc:
            logger.warning("feature cache %s is unreadable (%s); rebuilding it", self.path, exc)
            self.path.replace(self.path.with_suffix(self.path.suffix + ".broken"))
            return {}

    def save(self, key: str, vectors: dict[str, np.ndarray]) -> None:
        """Add ``vectors`` under ``key``: on a copy of the cache renamed over it, so the file is whole at any moment.

        The cache is optional: when it cannot be written (read-only location,
        full disk) this logs a warning and training goes on without it.
        """
        import shutil

        import h5py

        from xanesnet.io.files import writing

        size = self.path.stat().st_size if self.path.exists() else 0
        need = size + sum(v.nbytes + 1024 for v in vectors.values()) + 2**20
        try:
            with writing(self.path, min_free=need) as tmp:  # checks the free space before h5py writes a byte
                if size:
                    shutil.copyfile(self.path, tmp)
                with h5py.File(tmp, "a") as f:
                    group = f.require_group(key)
                    for digest, vec in vectors.items():
                        if digest not in group:
                            group.create_dataset(digest, data=vec)
        except (XanesnetError, OSError) as exc:
            logger.warning("feature cache not updated (%s); continuing without it", exc)


def cache_root() -> Path:
    """Where xanesnet keeps caches: ``$XANESNET_CACHE`` or ``~/.cache/xanesnet`` (never the repository)."""
    return Path(os.environ.get("XANESNET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xanesnet"))


def default_cache_path() -> Path:
    """The feature cache: ``features.h5`` in :func:`cache_root`."""
    return cache_root() / "features.h5"


def load_spectra(paths: Sequence[str | os.PathLike], *, fmt: str | None = None,
                 process: Callable[[Spectrum], Spectrum] | None = None,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Energy grid and stacked intensities (n, points) of spectrum files that share one grid.

    ``process`` (e.g. broadening and resampling) is applied to each spectrum
    first; without it, every file must already be on the first file's grid.
    """
    from tqdm.auto import tqdm

    files = tqdm(list(paths), desc="spectra", unit="file", disable=not progress, leave=False)
    return stack_spectra((read_spectrum(p, fmt=fmt) for p in files), process=process)


def stack_spectra(spectra: Iterable[Spectrum], *, process: Callable[[Spectrum], Spectrum] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Energy grid and stacked intensities of spectra that share one grid (after ``process``)."""
    energy = None
    rows, sources = [], []
    for spec in spectra:
        if process is not None:
            spec = process(spec)
        if energy is None:
            energy = spec.energy
        elif len(spec.energy) != len(energy) or not np.allclose(spec.energy, energy, rtol=0, atol=1e-6 * max(1.0, float(np.abs(energy).max()))):
            raise XanesnetError(
                f"energy grid differs from the first spectrum's ({len(spec.energy)} points {spec.energy[0]:g}-{spec.energy[-1]:g} eV "
                f"vs {len(energy)} points {energy[0]:g}-{energy[-1]:g} eV); resample onto a common grid (--grid)",
                path=spec.source or spec.name)
        rows.append(spec.intensity)
        sources.append(spec.source or spec.name)
    if energy is None:
        raise XanesnetError("no spectra to read")
    y = np.vstack(rows)
    _check_outliers(y, sources)
    return np.asarray(energy, float), y


#: A spectrum whose largest intensity is this many times the set's median largest intensity is refused.
OUTLIER_FACTOR = 1000.0


def _check_outliers(y: np.ndarray, sources: Sequence[str]) -> None:
    """Refuse a spectrum of a set whose scale is absurd next to the others' (a corrupted point, a unit mix-up)."""
    peak = np.abs(y).max(axis=1)
    typical = float(np.median(peak))
    k = int(np.argmax(peak))
    if len(peak) >= 3 and typical > 0 and peak[k] > OUTLIER_FACTOR * typical:
        raise XanesnetError(f"intensity reaches {peak[k]:.4g}, {peak[k] / typical:.3g} times the typical spectrum's largest "
                            f"({typical:.4g}) in this set: a corrupted point or another unit?", path=sources[k])


def heldout_mask(ids: Sequence[str], fraction: float = 0.1) -> np.ndarray:
    """The fixed held-out split: a name is held out when SHA-256(name) mod 1000 < 1000 * fraction.

    It depends on the name alone, so it is the same whatever the file order,
    machine or seed, and a molecule added later never moves others across it.
    """
    cut = int(round(1000 * fraction))
    return np.array([int(hashlib.sha256(i.encode()).hexdigest(), 16) % 1000 < cut for i in ids], dtype=bool)


def data_hash(ids: Sequence[str], x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the training data (names, features, spectra) as saved with the model."""
    h = hashlib.sha256()
    h.update("\n".join(ids).encode())
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()
