"""Read molecular structures and resolve the absorbing atom.

Three kinds of file are read, told apart by their content:

* XANESNET-style xyz: line 1 the atom count, line 2 a name, then ``Z x y z``
  rows with the atomic number in column 1 (``ase.io`` cannot read these);
  rows after the declared count (XANESNET's own test files repeat the last
  one) are ignored with a warning, as XANESNET ignores them;
* xyz with element symbols, including tmQM's comment line
  ``CSD_code = X | q = 1 | S = 0 | ...`` (charge ``q`` and spin ``S`` are kept);
* anything else ``ase.io.read`` reads (imported only for those files),
  and xyz files with a ``Lattice=`` comment (extended xyz).

Positions are in Angstrom. The models describe isolated molecules, so a
periodic structure (a CIF, or extended xyz with a cell) is read only when no
atom has a periodic image within :data:`PERIODIC_REACH`: a molecule in a box
with enough vacuum. A crystal or a molecule split across the cell boundary
is refused with an error saying so, never silently cut at the cell edge.

Every structure read passes :func:`validate_structure`, the one check of what
a molecule may be (known elements, finite coordinates, no atoms closer than
:data:`MIN_DISTANCE`, no impossible packing, a sane charge and spin), done in
O(n log n) before anything builds pairwise arrays. A file holding several
structures (frames, models, records) is refused, never read as one of them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from xanesnet.errors import XanesnetError

logger = logging.getLogger(__name__)

#: First-row transition metals, the absorbers xanesnet knows (Ti-Zn).
FIRST_ROW_TM: tuple[str, ...] = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")
FIRST_ROW_TM_Z: tuple[int, ...] = tuple(atomic_numbers[s] for s in FIRST_ROW_TM)
_IS_FIRST_ROW_TM = np.isin(np.arange(len(chemical_symbols)), FIRST_ROW_TM_Z)

_XYZ_SUFFIXES = (".xyz",)

#: Angstrom; farther than any shipped descriptor looks from the absorber (r_max 6 A, donor environments 7 A).
PERIODIC_REACH = 8.0
#: The most atoms a structure may have; checked before any pairwise work.
MAX_ATOMS = 100_000
#: Angstrom: the largest coordinate magnitude (beyond it distances lose all precision).
MAX_COORDINATE = 1e5
#: Angstrom: atoms closer than this overlap (a broken geometry; the shortest bond, H2, is 0.74 A).
MIN_DISTANCE = 0.5
#: Atoms within DENSITY_RADIUS (Angstrom) of any atom, itself included, may be at most MAX_NEIGHBOURS:
#: in every third tmQM molecule (9,766 of them) there are at most 12.
DENSITY_RADIUS, MAX_NEIGHBOURS = 2.0, 24
#: Bytes: larger structure files are refused before they are read.
MAX_FILE_BYTES = 16 * 2**20
#: Compressed files are refused (their size says nothing of what they hold): decompress first.
_COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst", ".lzma")
#: Formats whose files can hold several structures, by suffix: the separator line of their records.
_RECORD_SEPARATORS = {".sdf": "$$$$", ".sd": "$$$$", ".mol": "$$$$"}
_COMMENT_FIELD = re.compile(r"\b(q|S)\s*=\s*([-+]?\d+(?:\.\d*)?)")
_NAME_CHARGE = re.compile(r"\((\d*)([+-])\)(?:_\w*)?\s*$")
_SYMBOL_TO_Z = {**{s: z for z, s in enumerate(chemical_symbols) if z}, **{s.upper(): z for z, s in enumerate(chemical_symbols) if z}}


@dataclass(frozen=True)
class Structure:
    """A molecule: atomic numbers, positions (Angstrom), and what the file said of it."""

    name: str
    numbers: np.ndarray
    positions: np.ndarray
    charge: float | None = None
    spin: float | None = None
    source: str | None = None
    info: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.numbers]


def read_structure(path: str | os.PathLike, raw: bytes | None = None) -> Structure:
    """Read one structure from ``path``; raise :class:`XanesnetError` naming the file on bad input.

    ``raw`` are the file's bytes when the caller has already read them (e.g. to hash them).
    """
    path = Path(path)
    if raw is None:
        check_input_file(path, MAX_FILE_BYTES)
    if path.suffix.lower() in _COMPRESSED:
        raise XanesnetError("compressed file: decompress it first", path=path)
    if path.suffix.lower() in _XYZ_SUFFIXES:
        try:
            text = (path.read_bytes() if raw is None else raw).decode()
        except UnicodeDecodeError:
            raise XanesnetError("not a text file", path=path) from None
        if "lattice=" not in _second_line(text).lower():  # extended xyz with a cell goes to ase
            return parse_xyz(text, name=path.stem, source=str(path))
    return _read_with_ase(path)


def check_input_file(path: Path, max_bytes: int) -> None:
    """Refuse a missing path, a directory, a device or pipe, and a file larger than ``max_bytes``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise XanesnetError("no such file", path=path) from None
    except OSError as exc:
        raise XanesnetError(f"cannot read ({exc.strerror})", path=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise XanesnetError("not a file", path=path)
    if info.st_size > max_bytes:
        raise XanesnetError(f"file of {info.st_size / 2**20:.0f} MB is larger than the {max_bytes / 2**20:.0f} MB limit", path=path)


def _second_line(text: str) -> str:
    """The comment line of an xyz text, without splitting the whole file."""
    start = text.find("\n") + 1
    if start == 0:
        return ""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def parse_xyz(text: str, *, name: str, source: str | None = None) -> Structure:
    """Parse xyz text with either atomic numbers or element symbols in column 1."""
    where = source if source is not None else name
    lines = text.splitlines()
    if not lines or not text.strip():
        raise XanesnetError("empty file", path=where)
    try:
        n_atoms = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise XanesnetError(f"line 1 should be the atom count, found {lines[0].strip()[:40]!r}", path=where) from None
    if n_atoms < 1:
        raise XanesnetError(f"atom count is {n_atoms}", path=where)
    if n_atoms > MAX_ATOMS:
        raise XanesnetError(f"atom count {n_atoms} is more than the {MAX_ATOMS:,} atoms xanesnet accepts", path=where)
    n_rows = sum(map(bool, map(str.strip, lines[2:])))  # non-blank rows, counted without a Python loop
    if n_rows != n_atoms:
        frame = _second_frame(lines, n_atoms)
        if frame is not None:
            raise XanesnetError(f"several structures in one file (a second frame starts at line {frame}); "
                                "xanesnet reads one molecule per file: split it into one file per structure", path=where)
    if n_rows < n_atoms:
        raise XanesnetError(f"line 1 says {n_atoms} atoms but {n_rows} coordinate rows follow", path=where)
    body = lines[2:]
    if n_rows > n_atoms:  # XANESNET's data sets: rows past the declared count are not atoms, as XANESNET reads them
        logger.warning("%s: line 1 says %d atoms; read those and ignored the %d row(s) after them", where, n_atoms,
                       n_rows - n_atoms)
        last = [k for k, ln in enumerate(body) if ln.strip()][n_atoms - 1]
        body = body[:last + 1]  # up to the last declared row
    comment = lines[1] if len(lines) > 1 else ""
    parsed = _parse_rows_fast(body, n_atoms)
    if parsed is None:
        parsed = _parse_rows([(k + 3, ln) for k, ln in enumerate(body) if ln.strip()], where)
    numbers, positions = parsed
    if not np.all(np.isfinite(positions)):
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise XanesnetError(f"atom {bad + 1}: coordinate is NaN or infinite", path=where)
    fields = dict(_COMMENT_FIELD.findall(comment))
    charge = float(fields["q"]) if "q" in fields else _charge_from_name(comment)
    spin = float(fields["S"]) if "S" in fields else None
    return validate_structure(Structure(name=name, numbers=numbers, positions=positions, charge=charge, spin=spin,
                                        source=source, info={"comment": comment.strip()}))


def _second_frame(lines: list[str], n_atoms: int) -> int | None:
    """Line number (1-based) where a second xyz frame starts right after the first, or None."""
    k = n_atoms + 2
    while k < len(lines) and not lines[k].strip():
        k += 1
    if k + 1 < len(lines) and _is_count(lines[k]):
        count = int(lines[k])  # a frame: a count, a comment line, then at least that many rows
        if count >= 1 and sum(map(bool, map(str.strip, lines[k + 2:]))) >= count:
            return k + 1
    return None


def _is_count(line: str) -> bool:
    token = line.strip()
    return token.isascii() and token.isdigit()


def _parse_rows_fast(body: list[str], n_atoms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Whole-table parse for well-formed files; ``None`` sends the caller to the row-by-row parser."""
    tokens = " ".join(body).split()
    if len(tokens) != 4 * n_atoms:
        return None
    first = tokens[0::4]
    del tokens[0::4]
    try:
        positions = np.array(list(map(float, tokens))).reshape(n_atoms, 3)
        if _is_count(first[0]):
            numbers = np.array(list(map(int, first)), dtype=np.int64)
        else:
            numbers = np.array(list(map(_SYMBOL_TO_Z.__getitem__, first)), dtype=np.int64)
    except (ValueError, KeyError, OverflowError):
        return None
    if numbers.min() < 1 or numbers.max() >= len(chemical_symbols):
        return None
    return numbers, positions


def _parse_rows(rows: list[tuple[int, str]], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Row-by-row parse that names the first bad row."""
    n_atoms = len(rows)
    numbers = np.empty(n_atoms, dtype=np.int64)
    positions = np.empty((n_atoms, 3), dtype=np.float64)
    for i, (lineno, row) in enumerate(rows):
        parts = row.split()
        if len(parts) < 4:
            raise XanesnetError(f"atom {i + 1}: expected 'element x y z', found {row.strip()[:60]!r}", path=where, line=lineno)
        numbers[i] = _element_number(parts[0], where, i)
        try:
            positions[i] = (float(parts[1]), float(parts[2]), float(parts[3]))
        except ValueError:
            raise XanesnetError(f"atom {i + 1}: non-numeric coordinate in {row.strip()[:60]!r}", path=where, line=lineno) from None
    return numbers, positions


def _charge_from_name(comment: str) -> float | None:
    """Charge written as ``(1+)`` / ``(2-)`` at the end of a CSD-style name, as in XANESNET data sets."""
    match = _NAME_CHARGE.search(comment)
    if match is None:
        return None
    return float(match.group(1) or 1) * (1 if match.group(2) == "+" else -1)


def _element_number(token: str, where: str, index: int) -> int:
    if token.isascii() and token.lstrip("+").isdigit() and token.count("+") <= 1 and len(token) <= 4:
        z = int(token)
        if not 1 <= z < len(chemical_symbols):
            raise XanesnetError(f"atom {index + 1}: unknown atomic number {token[:20]}", path=where)
        return z
    symbol = token.capitalize()
    z = atomic_numbers.get(symbol)
    if z is None or z == 0:
        raise XanesnetError(f"atom {index + 1}: unknown element {token[:20]!r}", path=where)
    return z


def _read_with_ase(path: Path) -> Structure:
    import ase.io  # slow to import; only for formats we do not parse ourselves
    from ase.io.formats import filetype

    _check_single_record(path)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # an absurd cell must end in our error alone
            warnings.simplefilter("ignore")
            frames = ase.io.read(path, index=":")
            fmt = filetype(str(path))
    except Exception as exc:  # ase raises many types for unreadable files
        raise XanesnetError(f"cannot read structure ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unknown format'})", path=path) from None
    frames = frames if isinstance(frames, list) else [frames]
    if len(frames) > 1:
        raise XanesnetError(f"{len(frames)} structures (frames or models) in one file; xanesnet reads one molecule per file: "
                            "split it into one file per structure", path=path)
    if not frames or len(frames[0]) == 0:
        raise XanesnetError("no atoms in file", path=path)
    atoms = frames[0]
    info = dict(atoms.info)
    charge = _info_number(info, ("charge", "q"), path)
    spin = _info_number(info, ("spin", "S"), path)
    structure = validate_structure(Structure(name=path.stem, numbers=np.asarray(atoms.numbers, dtype=np.int64),
                                             positions=np.asarray(atoms.get_positions(), dtype=np.float64),
                                             charge=charge, spin=spin, source=str(path)))
    if atoms.pbc.any() and not (fmt == "proteindatabank" and _pdb_placeholder_cell(atoms)):
        _check_no_periodic_neighbours(atoms, path)
    return structure


def _check_single_record(path: Path) -> None:
    """Refuse a multi-record file of a format ase reads only the first record of (SDF)."""
    separator = _RECORD_SEPARATORS.get(path.suffix.lower())
    if separator is None:
        return
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise XanesnetError(f"cannot read ({exc.strerror})", path=path) from None
    records = [r for r in text.split(separator) if r.strip()]
    if len(records) > 1:
        raise XanesnetError(f"{len(records)} structures (records ending in {separator}) in one file; xanesnet reads one "
                            "molecule per file: split it into one file per structure", path=path)


def _info_number(info: dict, keys: tuple[str, ...], path: Path) -> float | None:
    """The first of ``keys`` in an extended-xyz comment as a number, or None; anything else is an error."""
    for key in keys:
        if key in info:
            value = info[key]
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise XanesnetError(f"{key}={str(value)[:40]!r} in the comment line is not a number", path=path)
            return float(value)
    return None


def validate_structure(structure: Structure) -> Structure:
    """Check that ``structure`` can be a molecule; return it, or raise :class:`XanesnetError` naming the file.

    Known elements (Z 1-118), finite coordinates within :data:`MAX_COORDINATE`,
    at most :data:`MAX_ATOMS` atoms, no two atoms closer than
    :data:`MIN_DISTANCE` (duplicated rows, an atom on top of another), no atom
    with more than :data:`MAX_NEIGHBOURS` atoms within :data:`DENSITY_RADIUS`
    (a physically impossible packing that would blow up every descriptor), and a
    finite charge and spin no larger in size than the electron count. Costs
    O(n log n) time and O(n) memory.
    """
    where = structure.source or structure.name
    numbers, pos = np.asarray(structure.numbers), np.asarray(structure.positions)
    n = len(numbers)
    if numbers.ndim != 1 or pos.shape != (n, 3):
        raise XanesnetError(f"numbers and positions must be (n,) and (n, 3), got {numbers.shape} and {pos.shape}", path=where)
    if n == 0:
        raise XanesnetError("no atoms", path=where)
    if n > MAX_ATOMS:
        raise XanesnetError(f"{n:,} atoms is more than the {MAX_ATOMS:,} xanesnet accepts", path=where)
    if numbers.min() < 1 or numbers.max() >= len(chemical_symbols):  # the cheap test first, the culprit only when it fails
        bad = np.flatnonzero((numbers < 1) | (numbers >= len(chemical_symbols)))
        raise XanesnetError(f"atom {bad[0] + 1}: atomic number {numbers[bad[0]]} is not an element", path=where)
    extent = np.abs(pos).max(axis=1)  # NaN for an atom with a NaN coordinate
    if not extent.max() <= MAX_COORDINATE:
        if not np.all(np.isfinite(pos)):
            raise XanesnetError(f"atom {int(np.argwhere(~np.isfinite(pos))[0, 0]) + 1}: coordinate is NaN or infinite", path=where)
        k = int(np.argmax(extent))
        raise XanesnetError(f"atom {k + 1}: coordinate {extent[k]:.3g} A is beyond {MAX_COORDINATE:g} A", path=where)
    electrons = float(numbers.sum())
    for label, value in (("charge", structure.charge), ("spin", structure.spin)):
        if value is not None and not (math.isfinite(value) and abs(value) <= electrons + 1):
            raise XanesnetError(f"{label} {value:g} is impossible for a molecule with {electrons:g} electrons", path=where)
    if 1 < n <= _DENSE_LIMIT:  # one distance array for both checks; the detailed ones name the atoms when one fails
        d2 = _squared_distances(pos.astype(np.float64, copy=False))
        np.fill_diagonal(d2, np.inf)
        if (math.sqrt(d2.min()) < MIN_DISTANCE
                or np.count_nonzero(d2 < DENSITY_RADIUS * DENSITY_RADIUS, axis=1).max() + 1 > MAX_NEIGHBOURS):
            check_overlaps(structure, d2=d2)
            _check_packing(structure, d2)
    elif n > 1:
        check_overlaps(structure)
        _check_packing(structure)
    return structure


#: Up to this many atoms pairwise distances are computed as one dense array; beyond it, with a k-d tree.
_DENSE_LIMIT = 1500


def _squared_distances(pos: np.ndarray) -> np.ndarray:
    """Dense (n, n) squared distances, coordinate by coordinate (exact: no Gram-matrix cancellation)."""
    x, y, z = pos.T
    return (x[:, None] - x) ** 2 + (y[:, None] - y) ** 2 + (z[:, None] - z) ** 2


def _nearest(pos: np.ndarray, d2: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distance (Angstrom) from each atom to its nearest other atom, and that atom's index (``d2``: the squared
    distances from :func:`_squared_distances`, if already computed; they are changed)."""
    n = len(pos)
    if n <= _DENSE_LIMIT:
        d2 = _squared_distances(pos) if d2 is None else d2
        np.fill_diagonal(d2, np.inf)
        nearest = d2.argmin(1)
        return np.sqrt(d2[np.arange(n), nearest]), nearest
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(pos).query(pos, k=2)
    return dist[:, 1], np.where(idx[:, 0] == np.arange(n), idx[:, 1], idx[:, 0])  # duplicates can come first


def _neighbour_counts(pos: np.ndarray, radius: float, d2: np.ndarray | None = None) -> np.ndarray:
    """Number of atoms within ``radius`` (Angstrom) of each atom, itself included (``d2`` as in :func:`_nearest`)."""
    if len(pos) <= _DENSE_LIMIT:
        d2 = _squared_distances(pos) if d2 is None else d2
        np.fill_diagonal(d2, np.inf)
        return np.count_nonzero(d2 < radius * radius, axis=1) + 1
    from scipy.spatial import cKDTree

    return cKDTree(pos).query_ball_point(pos, radius, return_length=True)


def _check_packing(structure: Structure, d2: np.ndarray | None = None) -> None:
    within = _neighbour_counts(np.asarray(structure.positions, dtype=np.float64), DENSITY_RADIUS, d2)
    k = int(np.argmax(within))
    if within[k] > MAX_NEIGHBOURS:
        raise XanesnetError(f"atom {k + 1} ({chemical_symbols[structure.numbers[k]]}) has {within[k] - 1} other atoms within "
                            f"{DENSITY_RADIUS:g} A (molecules have at most about {MAX_NEIGHBOURS // 2}): a physically "
                            "impossible packing", path=structure.source or structure.name)


def _pdb_placeholder_cell(atoms) -> bool:
    """The 1 x 1 x 1 A cubic cell that PDB files of non-crystal structures carry (``CRYST1 1.000 1.000 1.000``)."""
    return bool(np.allclose(atoms.cell.cellpar(), [1.0, 1.0, 1.0, 90.0, 90.0, 90.0]))


def _check_no_periodic_neighbours(atoms, path: Path) -> None:
    """Refuse a periodic structure in which some atom has a periodic image within :data:`PERIODIC_REACH`.

    The cell is checked first, in constant time: it must be finite and non-degenerate in its periodic
    directions, and its shortest lattice vector at least :data:`PERIODIC_REACH` (else every atom sees its
    own image). A lattice whose shortest vector exceeds the molecule's size plus the reach cannot bring
    any image that close, so the neighbour search runs only in between.
    """
    from ase.geometry import minkowski_reduce
    from ase.neighborlist import neighbor_list

    pbc = np.asarray(atoms.pbc, bool)
    flags = " ".join("T" if p else "F" for p in pbc)
    cell = np.asarray(atoms.cell, dtype=np.float64)
    if not np.all(np.isfinite(cell)) or np.abs(cell).max() > MAX_COORDINATE * 1e3:
        raise XanesnetError(f"periodic structure (pbc = {flags}) with a NaN, infinite or absurdly large cell", path=path)
    lattice = cell[pbc]
    if np.linalg.matrix_rank(lattice, tol=1e-6) < len(lattice):
        raise XanesnetError(f"periodic structure (pbc = {flags}) with a zero or flat cell (its periodic vectors span no "
                            "volume)", path=path)
    try:
        with np.errstate(all="ignore"):
            reduced, _ = minkowski_reduce(cell, pbc=pbc)
    except Exception as exc:  # a numerically degenerate cell
        raise XanesnetError(f"periodic structure (pbc = {flags}) with an unusable cell ({type(exc).__name__})", path=path) from None
    shortest = float(np.linalg.norm(np.asarray(reduced)[pbc], axis=1).min())
    if shortest < PERIODIC_REACH:
        _refuse_images(atoms, path, 0, 0, f" (the cell repeats every {shortest:.3g} A)")
    pos = atoms.get_positions()
    size = float(np.linalg.norm(pos.max(0) - pos.min(0)))
    if shortest >= size + PERIODIC_REACH:
        return
    try:
        i, j, shift = neighbor_list("ijS", atoms, PERIODIC_REACH)
    except Exception as exc:  # e.g. a periodic direction with a zero cell vector
        raise XanesnetError(f"periodic structure with an unusable cell ({type(exc).__name__}: {exc})", path=path) from None
    image = np.flatnonzero(np.any(shift != 0, axis=1))
    if len(image):
        _refuse_images(atoms, path, int(i[image[0]]), int(j[image[0]]))


def _refuse_images(atoms, path: Path, i: int, j: int, note: str = "") -> None:
    flags = " ".join("T" if p else "F" for p in atoms.pbc)
    raise XanesnetError(f"periodic structure (pbc = {flags}): atom {i} ({chemical_symbols[atoms.numbers[i]]}) has a periodic "
                        f"image of atom {j} within {PERIODIC_REACH:g} A; xanesnet predicts isolated molecules{note}: cut out "
                        "one whole molecule and save it without a cell (.xyz)", path=path)


def resolve_absorber(structure: Structure, absorber: int | str | None = None) -> int:
    """Index (0-based) of the absorbing atom.

    Parameters
    ----------
    structure
        The molecule.
    absorber
        An atom index (0-based; an ``int`` or a string of digits), an element
        symbol that occurs exactly once, or ``None`` for the single first-row
        transition metal (Ti-Zn) in the molecule.
    """
    sites = absorber_sites(structure, absorber)
    if len(sites) > 1:
        symbol = chemical_symbols[structure.numbers[sites[0]]]
        raise XanesnetError(f"ambiguous absorber: {symbol} occurs {len(sites)} times (atoms {', '.join(map(str, sites[:8]))}); "
                            "pass --absorber INDEX (xanesnet predict averages over all of them)",
                            path=structure.source or structure.name)
    return sites[0]


def absorber_sites(structure: Structure, absorber: int | str | None = None) -> list[int]:
    """Indices (0-based) of the absorbing atoms: every atom of the element when ``absorber`` is a symbol.

    An element's K-edge spectrum of a molecule with several such atoms is the
    average over them. An index or ``None`` gives one site, as
    :func:`resolve_absorber` (``None`` with two or more Ti-Zn metals is an error).
    """
    where = structure.source or structure.name
    if isinstance(absorber, str) and absorber.strip().lstrip("-").isdigit():
        absorber = int(absorber)
    if isinstance(absorber, (int, np.integer)):
        index = int(absorber)
        if not -len(structure) <= index < len(structure):
            raise XanesnetError(f"absorber index {index} is out of range for {len(structure)} atoms", path=where)
        return [index % len(structure)]
    if absorber is None:
        hits = np.flatnonzero(_IS_FIRST_ROW_TM[np.clip(structure.numbers, 0, len(_IS_FIRST_ROW_TM) - 1)])
        if len(hits) == 0:
            raise XanesnetError("no first-row transition metal (Ti-Zn) to use as absorber; pass --absorber", path=where)
        if len(hits) > 1:
            found = ", ".join(f"{chemical_symbols[structure.numbers[i]]} (atom {i})" for i in hits)
            elements = {chemical_symbols[structure.numbers[i]] for i in hits}
            also = f", or --absorber {elements.pop()} to average over all of them" if len(elements) == 1 else ""
            raise XanesnetError(f"ambiguous absorber: {len(hits)} first-row transition metals ({found}); "
                                f"pass --absorber INDEX{also}", path=where)
        return [int(hits[0])]
    symbol = str(absorber).strip().capitalize()
    if symbol not in atomic_numbers:
        raise XanesnetError(f"absorber {absorber!r} is neither an atom index nor an element symbol", path=where)
    hits = np.flatnonzero(structure.numbers == atomic_numbers[symbol])
    if len(hits) == 0:
        raise XanesnetError(f"absorber element {symbol} does not occur in the structure", path=where)
    return [int(h) for h in hits]


def absorber_element(structure: Structure, absorber: int | str | None = None) -> str:
    """Element symbol of the (first) absorbing atom, as :func:`absorber_sites` picks it."""
    return chemical_symbols[structure.numbers[absorber_sites(structure, absorber)[0]]]


def check_overlaps(structure: Structure, *, min_distance: float = MIN_DISTANCE, d2: np.ndarray | None = None) -> None:
    """Raise when two atoms are closer than ``min_distance`` (Angstrom), including at distance 0: a broken geometry.

    ``d2``: the structure's squared distances if the caller has them (they are changed)."""
    pos = np.asarray(structure.positions, dtype=np.float64)
    if len(pos) < 2:
        return
    dist, nearest = _nearest(pos, d2)
    i = int(np.argmin(dist))
    j = int(nearest[i])
    if dist[i] < min_distance:
        what = "at the same position" if dist[i] == 0 else f"{dist[i]:.3f} A apart"
        raise XanesnetError(f"atoms {min(i, j)} and {max(i, j)} are {what} (closer than {min_distance} A): overlapping atoms",
                            path=structure.source or structure.name)


def find_structure_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and directories into a sorted list of structure files.

    Directories contribute their ``*.xyz`` files; a missing path is an error.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():  # sorted by name (strings: sorting Path objects is slow for big libraries)
            with os.scandir(p) as entries:
                names = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in _XYZ_SUFFIXES and e.is_file())
            found.extend(p / name for name in names)
        elif p.exists():
            found.append(p)
        else:
            raise XanesnetError("no such file or directory", path=p)
    return found
