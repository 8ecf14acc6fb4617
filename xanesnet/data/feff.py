"""FEFF10 training data of the shipped Ti-Zn models: where it lives, how to read it, and how our own runs are kept.

Three sources, each giving :class:`~xanesnet.simulate.SimulatedSpectrum` objects
(structure, absorber, raw FEFF spectrum on FEFF's absolute ``omega`` scale,
with the Fermi level in ``spectrum.meta["e_fermi"]``):

- the shared sets ``feff_3d`` and ``feff_3d_more`` (``../shared/data``, or
  ``$XANESNET_SHARED_DATA``): ``<Metal>/xyz/<name>.xyz`` with
  ``<Metal>/{xanes,xes}/<name>.dat`` (FEFF ``xmu.dat``), paired by name;
- our own runs, committed as ``data/feff_extra/<Metal>.npz`` and one shard
  ``<Metal>.<k>.npz`` per later export (:func:`read_extra`; layout in that
  directory's README), written by :func:`export` from a snapshot of the live
  simulation file.

:func:`export` only adds: molecules already committed stay as they are (their
files are never rewritten), and the new ones from the simulation file go into
a new shard, so a simulation file that holds only the latest runs never loses
older ones, and each export adds only its own molecules to the history.
Every geometry the campaign runs is a tmQM file's, bit for bit: from the
fifteenth export on, :func:`export` stores each one as a digest and
:func:`read_feff_extra` reads it back from the shared tmQM set
(:data:`GEOMETRY_SOURCE`): the positions were the largest part of an export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum, read_spectrum
from xanesnet.io.structures import FIRST_ROW_TM, Structure, find_structure_files, read_structure
from xanesnet.simulate.store import SimulatedSpectrum, read_simulations

logger = logging.getLogger(__name__)

FEFF_SPECTRA = ("xanes", "xes")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Our own FEFF10 runs, one compressed file per metal (committed).
EXTRA_DIR = REPO_ROOT / "data" / "feff_extra"
#: The shared FEFF10 sets, in the order they are merged (a name already read is not read again).
SHARED_SETS = ("feff_3d", "feff_3d_more")
#: The tmQM geometries the campaign runs FEFF on, in the shared data.
TMQM_ARCHIVE = "tmqm_3d.tar.gz"
#: An XES whose highest point exceeds this multiple of the median highest point of its metal's molecules is a FEFF
#: artifact, not a spectrum (see :func:`xes_artifacts`).
XES_ARTIFACT_FACTOR = 10.0
#: A file whose ``meta["geometry"]`` is this holds no structures, only ``geometry_sha256`` (the first 8 bytes of
#: :func:`geometry_digest`, per molecule); they are read from ``<tmQM>/<Metal>/<name>.xyz``
#: (:func:`tmqm_dir`).
GEOMETRY_SOURCE = "tmqm_3d"
_GEOMETRY_KEYS = ("geometry", "metal")
_DIGEST_BYTES = 8


def shared_data_dir() -> Path:
    """The shared reference data: ``$XANESNET_SHARED_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("XANESNET_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


def tmqm_dir(archive: str | os.PathLike | None = None, scratch: str | os.PathLike | None = None) -> Path:
    """The 29,296 tmQM Ti-Zn geometries (``index.tsv``, ``<Metal>/*.xyz``) unpacked from ``archive`` (default the
    shared one) into ``scratch/tmqm_3d`` (default the cache) once; atomic through a temporary directory."""
    from xanesnet.data.dataset import cache_root

    archive = Path(archive) if archive is not None else shared_data_dir() / TMQM_ARCHIVE
    scratch = Path(scratch) if scratch is not None else cache_root()
    target = scratch / "tmqm_3d"
    if (target / "index.tsv").is_file():
        return target
    if not archive.is_file():
        raise XanesnetError("no such archive", path=archive)
    tmp = scratch / ".tmqm_3d.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logger.info("extracting %s into %s", archive, target)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    os.replace(tmp / "tmqm_3d", target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def live_simulation_file() -> Path:
    """Where ``scripts/simulate_tmqm.py`` writes: ``$XANESNET_CACHE/feff_extra.h5`` (default ``~/.cache/xanesnet``)."""
    return Path(os.environ.get("XANESNET_CACHE") or Path.home() / ".cache" / "xanesnet") / "feff_extra.h5"


@dataclass
class FeffData:
    """One metal's molecules with one spectrum, by source, and what was left out and why."""

    by_source: dict[str, list[SimulatedSpectrum]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def molecules(self) -> list[tuple[str, SimulatedSpectrum]]:
        """``(source, molecule)`` for every molecule, merged by name: the first source with a name wins."""
        seen, out = set(), []
        for label, sims in self.by_source.items():
            for s in sims:
                if s.structure.name not in seen:
                    seen.add(s.structure.name)
                    out.append((label, s))
        return out

    @property
    def duplicates(self) -> int:
        return sum(len(v) for v in self.by_source.values()) - len(self.molecules())


def read_feff_dir(directory: str | os.PathLike, metal: str, spectrum: str) -> tuple[list[SimulatedSpectrum], list[tuple[str, str]]]:
    """Molecules of one metal in a shared-layout directory, and the files left out with the reason.

    The absorber is the molecule's only atom of element ``metal``.
    """
    from xanesnet.data.dataset import list_files, pair_by_stem
    from xanesnet.io.structures import resolve_absorber

    _check_spectrum(spectrum)
    d = Path(directory) / metal
    pairing = pair_by_stem(find_structure_files([d / "xyz"]), list_files(d / spectrum, (".dat",)))
    skipped = [(p.stem, "unpaired file " + p.name) for p in pairing.structures_only + pairing.spectra_only]
    out = []
    for name, xyz, dat in zip(pairing.stems, pairing.structures, pairing.spectra):
        try:
            structure = read_structure(xyz)
            out.append(SimulatedSpectrum(structure=structure, absorber=resolve_absorber(structure, None),
                                         spectrum=read_spectrum(dat, fmt="feff")))
        except XanesnetError as exc:
            skipped.append((name, exc.message))
    return out, skipped


def load_feff(metal: str, spectrum: str, *, shared: str | os.PathLike | None = None,
              sets: tuple[str, ...] = SHARED_SETS, extra_dir: str | os.PathLike | None = EXTRA_DIR,
              live: str | os.PathLike | None = None) -> FeffData:
    """All FEFF10 molecules of ``metal`` with ``spectrum``: the shared ``sets``, our committed runs, the live file.

    A shared set that is missing is an error (the numbers would silently
    change); ``extra_dir=None`` leaves our own runs out, ``live`` (a
    simulation file) adds molecules not yet exported. For ``xes``, FEFF's
    artifacts (:func:`xes_artifacts`) are left out and listed in ``skipped``
    by name with the reason.
    """
    shared = Path(shared) if shared is not None else shared_data_dir()
    data = FeffData()
    for name in sets:
        if not (shared / name / metal).is_dir():
            raise XanesnetError(f"no {metal} directory in the shared FEFF set {name}", path=shared / name)
        sims, skipped = read_feff_dir(shared / name, metal, spectrum)
        data.by_source[name] = sims
        data.skipped += [(f"{name}:{n}", why) for n, why in skipped]
    if extra_dir is not None and extra_files(extra_dir, metal):
        data.by_source["feff_extra"] = read_extra(extra_dir, metal, spectrum)
    if live is not None:
        data.by_source["live"] = [s for s in snapshot(Path(live))[spectrum].values()
                                  if s.structure.symbols[s.absorber] == metal]
    if spectrum == "xes":
        artifacts = xes_artifacts([s for _, s in data.molecules()], metal)
        for label, sims in data.by_source.items():
            data.by_source[label] = [s for s in sims if s.structure.name not in artifacts]
        data.skipped += list(artifacts.items())
        if artifacts:
            logger.info("%s XES: left out %d FEFF artifacts: %s", metal, len(artifacts), ", ".join(artifacts))
    return data


def xes_artifacts(molecules: list[SimulatedSpectrum], metal: str, factor: float = XES_ARTIFACT_FACTOR) -> dict[str, str]:
    """The XES among ``molecules`` whose highest point exceeds ``factor`` times the median highest point, with why.

    FEFF's valence-to-core XES of a few complexes (nine V with N, O or Cl
    donors and one Cr, of ~590 each) is a single narrow line a few eV below
    the usual main line, more than 12 times the median complex's highest
    point, where every other complex of every metal stays within 4.5 times it:
    a numerical artifact of the calculation, not a spectrum any structure
    explains. Scaled to a common area, such a spectrum is that line alone.
    These are left out of training and scoring, each with its reason
    (``FeffData.skipped``).
    """
    peaks = {s.structure.name: float(np.max(s.spectrum.intensity)) for s in molecules}
    if not peaks:
        return {}
    median = float(np.median(list(peaks.values())))
    return {name: (f"FEFF XES artifact: highest point {peak:.3g}, {peak / median:.0f}x the median {median:.3g} of "
                   f"the {metal} molecules (limit {factor:g}x)")
            for name, peak in peaks.items() if peak > factor * median}


# --------------------------------------------------------------------------- our own runs (data/feff_extra)


def extra_files(extra_dir: str | os.PathLike, metal: str) -> list[Path]:
    """``<metal>.npz`` and the later exports' shards ``<metal>.<k>.npz`` in ``extra_dir``, in the order written."""
    extra_dir = Path(extra_dir)
    shards = {int(p.name.split(".")[1]): p for p in extra_dir.glob(f"{metal}.*.npz") if p.name.split(".")[1].isdigit()}
    first = extra_dir / f"{metal}.npz"
    return ([first] if first.is_file() else []) + [shards[k] for k in sorted(shards)]


def read_extra(extra_dir: str | os.PathLike, metal: str, spectrum: str) -> list[SimulatedSpectrum]:
    """Every exported molecule of ``metal`` (all of its files in ``extra_dir``) with its raw ``spectrum``."""
    return [sim for path in extra_files(extra_dir, metal) for sim in read_feff_extra(path, spectrum)]


def read_feff_extra(path: str | os.PathLike, spectrum: str, *, geometries: str | os.PathLike | None = None) -> list[SimulatedSpectrum]:
    """One exported file (``<Metal>.npz`` or a shard ``<Metal>.<k>.npz``): its molecules with their raw ``spectrum``.

    A file that stores its geometries by reference (:data:`GEOMETRY_SOURCE`) reads them from ``geometries``
    (default: the shared tmQM set, unpacked once) and checks each against its digest.
    """
    _check_spectrum(spectrum)
    path = Path(path)
    try:
        d = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise XanesnetError(f"cannot read exported FEFF runs ({exc})", path=path) from None
    with d:
        d = _Unpacked(d)
        meta = json.loads(str(d["meta"]))
        names = [str(n) for n in d["ids"]]
        if meta.get("geometry") == GEOMETRY_SOURCE:
            structures = _referenced_structures(path, names, meta["metal"], d["geometry_sha256"], geometries)
        else:
            structures = _stored_structures(path, names, d)
        points = np.concatenate([[0], np.cumsum(d[f"{spectrum}_len"])])
        out = []
        for k, (name, structure) in enumerate(zip(names, structures)):
            p, q = points[k], points[k + 1]
            spec = Spectrum(name=name, energy=d[f"{spectrum}_omega"][p:q].copy(), intensity=d[f"{spectrum}_mu"][p:q].copy(),
                            source=f"{path}:{name}/{spectrum}",
                            meta={"e_fermi": float(d[f"{spectrum}_e_fermi"][k]), "feff_version": meta.get("feff_version", ""),
                                  "cards": meta.get(f"cards_{spectrum}", "")})
            out.append(SimulatedSpectrum(structure=structure, absorber=int(d["absorber"][k]), spectrum=spec))
    return out


def _stored_structures(path: Path, names: list[str], d: "_Unpacked") -> list[Structure]:
    atoms = np.concatenate([[0], np.cumsum(d["n_atoms"])])
    numbers, positions, charges, spins = d["numbers"], d["positions"], d["charge"], d["spin"]
    out = []
    for k, name in enumerate(names):
        a, b = atoms[k], atoms[k + 1]
        charge, spin = float(charges[k]), float(spins[k])
        out.append(Structure(name=name, numbers=numbers[a:b].astype(np.int64), positions=positions[a:b],
                             charge=None if np.isnan(charge) else charge, spin=None if np.isnan(spin) else spin,
                             source=f"{path}:{name}"))
    return out


def _referenced_structures(path: Path, names: list[str], metal: str, digests: np.ndarray,
                           geometries: str | os.PathLike | None) -> list[Structure]:
    if geometries is None:
        try:
            geometries = tmqm_dir()
        except XanesnetError as exc:
            raise XanesnetError(f"its geometries are tmQM's, which are not here ({exc})", path=path) from None
    out = []
    for name, digest in zip(names, digests):
        xyz = Path(geometries) / metal / f"{name}.xyz"
        if not xyz.is_file():
            raise XanesnetError(f"{name}: no tmQM geometry {xyz}", path=path)
        structure = read_structure(xyz)
        if geometry_digest(structure) != bytes(digest):
            raise XanesnetError(f"{name}: the tmQM geometry {xyz} is not the one FEFF ran on (digest differs)", path=path)
        out.append(dataclasses.replace(structure, source=f"{path}:{name}"))
    return out


def geometry_digest(structure: Structure) -> bytes:
    """The first bytes of a SHA-256 over a structure's atomic numbers, positions, charge and spin (as float64)."""
    h = hashlib.sha256(np.asarray(structure.numbers, dtype="<i8").tobytes())
    h.update(np.asarray(structure.positions, dtype="<f8").tobytes())
    h.update(np.array([np.nan if v is None else v for v in (structure.charge, structure.spin)], dtype="<f8").tobytes())
    return h.digest()[:_DIGEST_BYTES]


def write_feff_extra(path: str | os.PathLike, molecules: dict[str, list[SimulatedSpectrum]], meta: dict, *,
                     geometries: str | os.PathLike | None = None) -> None:
    """Write ``molecules`` (``{spectrum: [...]}``, the same names in the same order) as one compressed ``.npz``.

    Each spectrum is kept as FEFF wrote it (``omega``, ``mu``) with its Fermi
    level, so the raw data can be rebuilt. With ``geometries`` (a tmQM
    directory, ``<Metal>/<name>.xyz``), the molecules (all of one metal) are
    stored by reference: each structure must be that file's exactly, and
    only its digest is kept. Written to a temporary file, then renamed.
    """
    path = Path(path)
    mols = molecules[FEFF_SPECTRA[0]]
    for s in FEFF_SPECTRA:
        if [m.structure.name for m in molecules[s]] != [m.structure.name for m in mols]:
            raise ValueError("every spectrum needs the same molecules in the same order")
    arrays: dict[str, np.ndarray] = {
        "ids": np.array([m.structure.name for m in mols]),
        "absorber": np.array([m.absorber for m in mols], dtype=np.int32),
    }
    meta = {k: v for k, v in meta.items() if k not in _GEOMETRY_KEYS}  # how this file stores geometries is its own
    if geometries is None:
        arrays.update({
            "charge": np.array([np.nan if m.structure.charge is None else m.structure.charge for m in mols]),
            "spin": np.array([np.nan if m.structure.spin is None else m.structure.spin for m in mols]),
            "n_atoms": np.array([len(m.structure) for m in mols], dtype=np.int32),
            "numbers": np.concatenate([m.structure.numbers for m in mols]).astype(np.int16),
            "positions": np.vstack([m.structure.positions for m in mols]),
        })
    else:
        metals = {m.structure.symbols[m.absorber] for m in mols}
        if len(metals) != 1:
            raise ValueError(f"a file that refers to tmQM holds one metal's molecules, not {sorted(metals)}")
        meta.update(geometry=GEOMETRY_SOURCE, metal=metals.pop())
        digests = [geometry_digest(m.structure) for m in mols]
        for m, digest in zip(mols, digests):
            xyz = Path(geometries) / meta["metal"] / f"{m.structure.name}.xyz"
            if not xyz.is_file() or geometry_digest(read_structure(xyz)) != digest:
                raise XanesnetError(f"{m.structure.name}: its geometry is not {xyz}'s; export it to a file that "
                                    "stores its geometries", path=path)
        arrays["geometry_sha256"] = np.array([np.frombuffer(d, np.uint8) for d in digests])
    arrays["meta"] = np.array(json.dumps(meta))
    for s in FEFF_SPECTRA:
        specs = [m.spectrum for m in molecules[s]]
        arrays[f"{s}_len"] = np.array([len(sp.energy) for sp in specs], dtype=np.int32)
        arrays[f"{s}_omega"] = np.concatenate([sp.energy for sp in specs])
        arrays[f"{s}_mu"] = np.concatenate([sp.intensity for sp in specs])
        arrays[f"{s}_e_fermi"] = np.array([_e_fermi(sp) for sp in specs])
    from xanesnet.atomic import write_npz  # the one atomic .npz writer

    write_npz(path, **{k: v for key, a in arrays.items() for k, v in _pack(key, a).items()})


#: Most decimals tried when packing a float array exactly as fixed-point numbers.
MAX_DECIMALS = 15
_DECIMALS = "__decimals"


def _pack(key: str, a: np.ndarray) -> dict[str, np.ndarray]:
    """``{key: a}``, or, when a float array is exactly decimal numbers, the same numbers in fewer bytes.

    FEFF and tmQM print fixed decimals, so such an array is ``n / 10**d`` for
    integers ``n``: it is stored as the differences of consecutive ``n`` split
    into their eight byte planes (which compress to ~60% of the float64's
    size, against ~95% for the float64 itself) and ``key__decimals`` = d.
    Used only when ``n / 10**d`` (what :func:`_unpack` computes, exactly:
    the integers are summed back without rounding) gives back every value
    bit for bit, so nothing is lost; otherwise the array is stored as it is.
    """
    if a.dtype != np.float64 or a.size == 0 or not np.all(np.isfinite(a)):
        return {key: a}
    flat = a.ravel()
    for d in range(MAX_DECIMALS + 1):
        scaled = flat * 10.0 ** d
        if np.abs(scaled).max() >= 2.0 ** 53:  # no longer exact integers in a float64
            break
        n = np.round(scaled).astype(np.int64)
        if np.array_equal(n / 10.0 ** d, flat):
            planes = np.diff(n, prepend=np.int64(0)).astype("<i8").view(np.uint8).reshape(-1, 8).T
            return {key: np.ascontiguousarray(planes), key + _DECIMALS: np.array([d, *a.shape], dtype=np.int64)}
    return {key: a}


def _unpack(d: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """The array ``key`` of an exported file (``d``: the loaded ``.npz``), as written, packed by :func:`_pack` or not."""
    if key + _DECIMALS not in d:
        return d[key]
    decimals, *shape = (int(v) for v in d[key + _DECIMALS])
    n = np.cumsum(np.ascontiguousarray(d[key].T).view("<i8").ravel())
    return (n / 10.0 ** decimals).reshape(shape)


class _Unpacked:
    """An exported file's arrays by name, packed ones unpacked."""

    def __init__(self, d: Mapping[str, np.ndarray]) -> None:
        self._d = d

    def __getitem__(self, key: str) -> np.ndarray:
        return _unpack(self._d, key)


def _e_fermi(spec: Spectrum) -> float:
    """FEFF's Fermi level (eV): kept in the metadata, or ``omega - e`` from the raw table."""
    if "e_fermi" in spec.meta:
        return float(spec.meta["e_fermi"])
    cols = list(spec.meta["columns"])
    table = spec.meta["table"]
    return float(np.median(table[:, cols.index("omega")] - table[:, cols.index("e")]))


@contextlib.contextmanager
def _private_copy(h5: Path) -> Iterator[Path]:
    """A merged private copy of a simulation file and its finished parts; the running simulation is never touched.

    The file and its finished parts (complete files only; they are renamed
    into place) are copied and merged in a temporary directory.
    """
    from xanesnet.simulate.store import merge_parts, parts_dir

    if not Path(h5).is_file():
        raise XanesnetError("no such simulation file", path=h5)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / h5.name
        shutil.copyfile(h5, copy)
        if parts_dir(h5).is_dir():
            parts_dir(copy).mkdir()
            for part in parts_dir(h5).glob("*.h5"):
                try:
                    shutil.copyfile(part, parts_dir(copy) / part.name)
                except FileNotFoundError:  # merged and deleted meanwhile: it is in the copy or the next export
                    continue
            merge_parts(copy)
        yield copy


def snapshot(h5: Path) -> dict[str, dict[str, SimulatedSpectrum]]:
    """``{spectrum: {name: molecule}}`` of a simulation file and its not yet merged parts, read from a private copy."""
    with _private_copy(Path(h5)) as copy:
        return {s: {sim.structure.name: sim for sim in read_simulations(copy, spectrum=s)} for s in FEFF_SPECTRA}


def campaign_summary(h5: str | os.PathLike) -> dict:
    """What a simulation file holds, per absorbing metal: finished molecules, failures by error, FEFF seconds.

    Read from a private copy. ``done`` counts molecules with both spectra;
    ``failed`` maps each error (without the file name) to its count.
    """
    import h5py

    out: dict = {}
    with _private_copy(Path(h5)) as copy, h5py.File(copy, "r") as f:
        for name, g in f.items():
            absorber = int(g.attrs.get("absorber", -1))
            metal = (Structure(name=name, numbers=g["numbers"][()], positions=g["positions"][()]).symbols[absorber]
                     if "numbers" in g and absorber >= 0 else "?")
            m = out.setdefault(metal, {"done": 0, "failed": {}, "seconds": 0.0})
            m["seconds"] += sum(float(v) for k, v in g.attrs.items() if k.startswith("seconds_"))
            error = g.attrs.get("error", "")
            error = error.decode() if isinstance(error, bytes) else str(error)
            if not error and all(s in g for s in FEFF_SPECTRA):
                m["done"] += 1
            else:
                parts = (error or "a spectrum is missing").split(": ")
                why = ": ".join(parts[1:] if len(parts) > 1 else parts)[:80]  # without the input file's path
                m["failed"][why] = m["failed"].get(why, 0) + 1
    return out


def export(h5: str | os.PathLike, out: str | os.PathLike = EXTRA_DIR, *,
           geometries: str | os.PathLike | None = None) -> dict[str, dict[str, int]]:
    """Add the finished molecules of a simulation file to ``out``, keeping every molecule (and file) already there.

    A molecule counts as finished when both its XANES and XES succeeded. A
    name already exported keeps its committed spectra; the new names of a
    metal go into a new file, ``<Metal>.npz`` for the first export and
    ``<Metal>.<k>.npz`` (k = 1, 2, ...) for later ones, so no committed file is
    ever rewritten. With ``geometries`` (the tmQM directory the runs came
    from) the new files store each geometry by reference
    (:func:`write_feff_extra`). Returns ``{metal: {"kept": n, "added": n,
    "total": n}}`` for every metal that has exported molecules.
    """
    h5, out = Path(h5), Path(out)
    sims = snapshot(h5)
    names = sorted(set(sims["xanes"]) & set(sims["xes"]))
    new: dict[str, list[str]] = defaultdict(list)
    for name in names:
        sim = sims["xanes"][name]
        new[sim.structure.symbols[sim.absorber]].append(name)
    counts = {}
    for metal in FIRST_ROW_TM:
        files = extra_files(out, metal)
        have: set[str] = set()
        for path in files:
            with np.load(path, allow_pickle=False) as d:
                have.update(str(n) for n in d["ids"])
        added = [n for n in new.get(metal, []) if n not in have]
        if not added:
            if have:
                counts[metal] = {"kept": len(have), "added": 0, "total": len(have)}
            continue
        meta = json.loads(str(np.load(files[0])["meta"])) if files else {}
        first = {s: sims[s][added[0]].spectrum.meta for s in FEFF_SPECTRA}
        meta.update({"what": f"FEFF10 K-edge XANES and K-beta XES of {metal} complexes from tmQM, simulated by xanesnet",
                     "feff_version": meta.get("feff_version") or first["xanes"].get("feff_version", ""),
                     "cards_xanes": meta.get("cards_xanes") or first["xanes"].get("cards", ""),
                     "cards_xes": meta.get("cards_xes") or first["xes"].get("cards", ""),
                     "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        meta.pop("source", None)  # a path on the exporting machine says nothing in a clone
        for key in ("feff_version", "cards_xanes", "cards_xes"):
            theirs = first["xanes" if key != "cards_xes" else "xes"].get("cards" if key.startswith("cards") else key, "")
            if theirs and meta[key] and theirs != meta[key]:
                raise XanesnetError(f"{metal}: the simulation file's {key} differs from the exported runs'; "
                                    "export them to another directory", path=h5)
        path = out / (f"{metal}.{int(files[-1].name.split('.')[1]) + 1 if len(files) > 1 else 1}.npz" if files
                      else f"{metal}.npz")
        write_feff_extra(path, {s: [sims[s][n] for n in added] for s in FEFF_SPECTRA}, meta, geometries=geometries)
        counts[metal] = {"kept": len(have), "added": len(added), "total": len(have) + len(added)}
        logger.info("%s: kept %d, added %d molecules -> %s", metal, len(have), len(added), path)
    return counts


def _check_spectrum(spectrum: str) -> None:
    if spectrum not in FEFF_SPECTRA:
        raise XanesnetError(f"spectrum must be one of {', '.join(FEFF_SPECTRA)}, not {spectrum!r}")
