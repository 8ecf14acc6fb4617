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
"""

from __future__ import annotations

import logging
import os
import re
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
    if raw is None and not path.is_file():
        raise XanesnetError("no such file" if not path.exists() else "not a file", path=path)
    if path.suffix.lower() in _XYZ_SUFFIXES:
        try:
            text = (path.read_bytes() if raw is None else raw).decode()
        except UnicodeDecodeError:
            raise XanesnetError("not a text file", path=path) from None
        if "lattice=" not in _second_line(text).lower():  # extended xyz with a cell goes to ase
            return parse_xyz(text, name=path.stem, source=str(path))
    return _read_with_ase(path)


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
    n_rows = sum(map(bool, map(str.strip, lines[2:])))  # non-blank rows, counted without a Python loop
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
    return Structure(name=name, numbers=numbers, positions=positions, charge=charge, spin=spin,
                     source=source, info={"comment": comment.strip()})


def _parse_rows_fast(body: list[str], n_atoms: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Whole-table parse for well-formed files; ``None`` sends the caller to the row-by-row parser."""
    tokens = " ".join(body).split()
    if len(tokens) != 4 * n_atoms:
        return None
    first = tokens[0::4]
    del tokens[0::4]
    try:
        positions = np.array(list(map(float, tokens))).reshape(n_atoms, 3)
        if first[0].isdigit():
            numbers = np.array(list(map(int, first)), dtype=np.int64)
        else:
            numbers = np.array(list(map(_SYMBOL_TO_Z.__getitem__, first)), dtype=np.int64)
    except (ValueError, KeyError):
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
    if token.lstrip("+-").isdigit():
        z = int(token)
        if not 1 <= z < len(chemical_symbols):
            raise XanesnetError(f"atom {index + 1}: unknown atomic number {token}", path=where)
        return z
    symbol = token.capitalize()
    z = atomic_numbers.get(symbol)
    if z is None or z == 0:
        raise XanesnetError(f"atom {index + 1}: unknown element {token!r}", path=where)
    return z


def _read_with_ase(path: Path) -> Structure:
    import ase.io  # slow to import; only for formats we do not parse ourselves

    try:
        atoms = ase.io.read(path)
    except Exception as exc:  # ase raises many types for unreadable files
        raise XanesnetError(f"cannot read structure ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unknown format'})", path=path) from None
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise XanesnetError("no atoms in file", path=path)
    positions = np.asarray(atoms.get_positions(), dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise XanesnetError("coordinate is NaN or infinite", path=path)
    if atoms.pbc.any() and not _pdb_placeholder_cell(atoms):
        _check_no_periodic_neighbours(atoms, path)
    info = dict(atoms.info)
    charge = info.get("charge", info.get("q"))
    spin = info.get("spin", info.get("S"))
    return Structure(name=path.stem, numbers=np.asarray(atoms.numbers, dtype=np.int64), positions=positions,
                     charge=None if charge is None else float(charge), spin=None if spin is None else float(spin),
                     source=str(path))


def _pdb_placeholder_cell(atoms) -> bool:
    """The 1 x 1 x 1 A cubic cell that PDB files of non-crystal structures carry (``CRYST1 1.000 1.000 1.000``)."""
    return bool(np.allclose(atoms.cell.cellpar(), [1.0, 1.0, 1.0, 90.0, 90.0, 90.0]))


def _check_no_periodic_neighbours(atoms, path: Path) -> None:
    """Refuse a periodic structure in which some atom has a periodic image within :data:`PERIODIC_REACH`."""
    from ase.neighborlist import neighbor_list

    try:
        i, j, shift = neighbor_list("ijS", atoms, PERIODIC_REACH)
    except Exception as exc:  # e.g. a periodic direction with a zero cell vector
        raise XanesnetError(f"periodic structure with an unusable cell ({type(exc).__name__}: {exc})", path=path) from None
    image = np.any(shift != 0, axis=1)
    if image.any():
        k = int(np.flatnonzero(image)[0])
        raise XanesnetError(
            f"periodic structure (pbc = {' '.join('T' if p else 'F' for p in atoms.pbc)}): atom {i[k]} "
            f"({chemical_symbols[atoms.numbers[i[k]]]}) has a periodic image of atom {j[k]} within {PERIODIC_REACH:g} A; "
            "xanesnet predicts isolated molecules: cut out one whole molecule and save it without a cell (.xyz)",
            path=path)


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


def check_overlaps(structure: Structure, *, min_distance: float = 0.5) -> None:
    """Raise when two atoms are closer than ``min_distance`` (Angstrom): a broken geometry."""
    pos = structure.positions
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    if d[i, j] < min_distance:
        raise XanesnetError(f"atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3f} A apart (closer than {min_distance} A): overlapping atoms",
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
