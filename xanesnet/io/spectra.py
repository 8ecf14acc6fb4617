"""Read spectra from the files theory codes write.

One registry, :data:`SPECTRUM_FORMATS`, maps a format name to a reader and a
content sniffer; :func:`read_spectrum` tries the sniffers in registry order
(most specific first) unless a format is given. Every reader returns a
:class:`Spectrum` (energies in eV, strictly increasing, finite intensities) or
raises :class:`XanesnetError` naming the file.

Formats
-------
``fdmnes-raw``
    FDMNES output before convolution: a header line of numbers ending in
    ``= E_edge, Z, n_edge, ...`` (kept in ``meta`` with lower-case keys, e.g.
    ``meta["e_edge"]``, ``meta["e_cut"]``), a column-name line
    (``Energy <xanes> ...``), then the table. Energies written relative to
    the edge (as FDMNES writes them) are moved to the absolute scale by adding
    ``E_edge``; ``meta["e_fermi"]`` is FDMNES's Fermi level ``E_edge + E_cut``.
``feff``
    FEFF ``xmu.dat``: ``#`` comment lines, the last naming the columns
    ``omega e k mu mu0 chi``. Energy is ``omega`` (absolute, eV), intensity
    ``mu``; ``meta["e_fermi"]`` is ``omega - e``, ``meta["table"]`` the table.
``fdmnes-conv``
    FDMNES convolved output: ``FDMNES`` banner and/or an ``energy <xanes>``
    column-name line, then the table (intensity from the ``<xanes>`` column).
``orca``
    ``orca_mapspc``-style tables: header lines, a column-name line such as
    ``Energy TotalSpectrum ...``, then columns (energy in eV; intensity from
    ``TotalSpectrum``/``Intensity`` if named, else the second column).
``xdi``
    XAS Data Interchange 1.0 (what Larch, Athena and beamlines exchange): a
    ``# XDI/1.0`` first line, ``# Family.tag: value`` header fields, then the
    columns. Energy is ``Column.1`` (eV, or keV converted to eV); the
    intensity is the first column named ``norm``, ``mu``, ``mutrans``,
    ``mufluor``, ``normtrans``, ``normfluor`` or ``intensity``, else
    ``-ln(itrans/i0)`` or ``ifluor/i0``, else column 2. The fields are kept in
    ``meta["xdi"]`` (``{"element": {"symbol": "Fe", ...}, ...}``, families and
    tags lower-case), ``meta["element"]`` and ``meta["edge"]``.
``athena``
    Athena project files (``.prj``), read with xraylarch
    (``pip install 'xanesnet[larch]'``): the first group's ``energy`` and ``mu``.
``two-column``
    Anything else that is header lines followed by numeric
    ``energy intensity ...`` rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from xanesnet.errors import XanesnetError

#: eV: no energy may be larger in size (X-ray edges lie below 0.2 MeV; relative energies are far smaller).
MAX_ABS_ENERGY = 1e6
#: No intensity may be larger in size: spectra of every code and unit used lie many orders of magnitude below.
MAX_ABS_INTENSITY = 1e9
#: The most points a spectrum may have (a fine 0.01 eV grid over 1 keV has 100,000).
MAX_POINTS = 200_000
#: Bytes: larger spectrum files are refused before they are read.
MAX_FILE_BYTES = 16 * 2**20
#: FEFF's name with a version (``FEFF10``, ``FEFF 9.6.4``, ``feff10-rs``), as its xmu.dat header lines give it.
_FEFF_BANNER = re.compile(r"\bfeff\s*\d", re.IGNORECASE)
#: eV: FEFF's ``e`` column is ``omega`` minus one Fermi level; this much disagreement is rounding.
_FERMI_TOLERANCE = 0.05


@dataclass(frozen=True)
class Spectrum:
    """Intensity on an energy grid (eV).

    ``meta`` holds what the file said (e.g. FDMNES ``E_edge`` as
    ``meta["e_edge"]``, the code's Fermi level as ``meta["e_fermi"]``, eV).
    ``e0`` is the edge energy (eV) once :mod:`xanesnet.spectra` has found it;
    when ``meta["energy_reference"] == "e0"`` the energies are relative to it.
    """

    name: str
    energy: np.ndarray
    intensity: np.ndarray
    source: str | None = None
    meta: dict = field(default_factory=dict, compare=False)
    e0: float | None = None


@dataclass(frozen=True)
class SpectrumFormat:
    """A reader and a test that tells, from the first lines, whether a file is of this format."""

    read: Callable[[Path], Spectrum]
    sniff: Callable[[list[str]], bool]


# --------------------------------------------------------------------------- table helpers


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_numeric_row(line: str, min_cols: int = 2) -> bool:
    parts = line.split()
    return len(parts) >= min_cols and all(_is_number(p) for p in parts[:min_cols])


class _TableError(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message, self.line = message, line


def _numeric_rows(lines: list[str], *, min_cols: int, start: int = 0) -> tuple[int, np.ndarray]:
    """Index of the first all-numeric row (from ``start``) and the table from there on.

    Blank lines and ``#`` comment lines inside the table are skipped.
    """
    first = None
    for k in range(start, len(lines)):
        if _is_numeric_row(lines[k], min_cols):
            first = k
            break
    if first is None:
        return -1, np.empty((0, min_cols))
    rows = []
    for k in range(first, len(lines)):
        ln = lines[k]
        parts = ln.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            rows.append([float(p) for p in parts[:64]])
        except ValueError:
            raise _TableError(f"non-numeric value in {ln.strip()[:60]!r}", k + 1) from None
        if len(rows) > MAX_POINTS:
            raise _TableError(f"more than {MAX_POINTS:,} rows", k + 1)
        if len(rows[-1]) != len(rows[0]):
            raise _TableError(f"{len(rows[-1])} columns where the table has {len(rows[0])}", k + 1)
    return first, np.asarray(rows, dtype=np.float64)


def _read_lines(path: Path) -> list[str]:
    from xanesnet.io.structures import check_input_file

    check_input_file(path, MAX_FILE_BYTES)
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError:
        raise XanesnetError("not a text file", path=path) from None


def _table(path: Path, lines: list[str], *, start: int = 0) -> tuple[int, np.ndarray]:
    """The numeric table of a file (first row index, rows x columns), errors naming the file."""
    try:
        first, table = _numeric_rows(lines, min_cols=2, start=start)
    except _TableError as exc:
        raise XanesnetError(exc.message, path=path, line=exc.line) from None
    if len(table) == 0:
        raise XanesnetError("empty spectrum: no numeric energy/intensity rows", path=path)
    finite = np.isfinite(table)
    if not finite.all():
        row, col = (int(k) for k in np.argwhere(~finite)[0])
        line = first + 1 + _data_row_offset(lines, first, row)
        raise XanesnetError(f"column {col + 1} is {table[row, col]} (NaN or infinite)", path=path, line=line)
    return first, table


def _data_row_offset(lines: list[str], first: int, row: int) -> int:
    """Offset from the table's first line to its ``row``-th data row (blank and ``#`` lines skipped)."""
    seen = -1
    for k in range(first, len(lines)):
        parts = lines[k].split()
        if parts and not parts[0].startswith("#"):
            seen += 1
            if seen == row:
                return k - first
    return 0


def _column_names(line: str) -> list[str]:
    return line.lstrip("#").split()


def _pick_column(names: Sequence[str], preferred: Sequence[str], ncols: int) -> int:
    """Index of the intensity column: the first preferred name present (case-insensitive), else column 1."""
    lowered = [n.lower() for n in names]
    if len(names) == ncols:
        for want in preferred:
            if want.lower() in lowered:
                return lowered.index(want.lower())
    return 1


def _spectrum(path: Path, energy: np.ndarray, intensity: np.ndarray, meta: dict) -> Spectrum:
    return validated(Spectrum(name=path.stem, energy=np.ascontiguousarray(energy, dtype=np.float64),
                              intensity=np.ascontiguousarray(intensity, dtype=np.float64), source=str(path), meta=meta))


def _header_lines(lines: list[str], first_row: int) -> list[str]:
    return [ln for ln in lines[:first_row] if ln.strip()]


# --------------------------------------------------------------------------- plain two-column


def read_two_column(path: Path) -> Spectrum:
    """Energy and intensity columns after any header lines (FDMNES convolved, ORCA-style, plain)."""
    lines = _read_lines(path)
    first, table = _table(path, lines)
    return _spectrum(path, table[:, 0], table[:, 1], {"header": _header_lines(lines, first)})


def _sniff_two_column(lines: list[str]) -> bool:
    """Header lines, then only numeric rows (blank and ``#`` lines aside)."""
    body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    first = next((k for k, ln in enumerate(body) if _is_numeric_row(ln)), None)
    return first is not None and all(_is_numeric_row(ln) for ln in body[first:])


# --------------------------------------------------------------------------- FDMNES


def _fdmnes_header(line: str) -> dict[str, float] | None:
    """``values = name, name, ...`` of an FDMNES raw output's first line, or None if it is not one."""
    if "=" not in line:
        return None
    values, names = line.split("=", 1)
    names = [n.strip() for n in names.split(",") if n.strip()]
    if not names or names[0].lower() != "e_edge":
        return None
    tokens = values.split()
    if len(tokens) != len(names) or not all(_is_number(t) for t in tokens):
        return None
    return {n.lower(): float(t) for n, t in zip(names, tokens)}


def read_fdmnes_raw(path: Path) -> Spectrum:
    """FDMNES output before convolution (``E_edge`` header line, column names, table)."""
    lines = _read_lines(path)
    head = next((k for k, ln in enumerate(lines) if ln.strip()), None)
    if head is None:
        raise XanesnetError("empty file", path=path)
    header = _fdmnes_header(lines[head])
    if header is None:
        raise XanesnetError("not FDMNES raw output: the first line does not end in '= E_edge, Z, ...' "
                            "with one number per name", path=path, line=head + 1)
    bad = next((k for k, v in header.items() if not abs(v) <= MAX_ABS_ENERGY), None)
    if bad is not None:
        raise XanesnetError(f"FDMNES header value {bad} = {header[bad]:g} is not a sane finite number", path=path, line=head + 1)
    first, table = _table(path, lines, start=head + 1)
    names = next((_column_names(ln) for ln in reversed(lines[head + 1:first]) if ln.strip()), [])
    col = _pick_column(names, ["<xanes>"], table.shape[1])
    energy = table[:, 0].copy()
    meta: dict = {"code": "fdmnes", **header, "columns": names}
    e_edge = header["e_edge"]
    if e_edge > 0 and energy.max() < 0.5 * e_edge:
        energy += e_edge
        meta["energy_offset"] = e_edge
    if "e_cut" in header:
        meta["e_fermi"] = e_edge + header["e_cut"]
    return _spectrum(path, energy, table[:, col], meta)


def _sniff_fdmnes_raw(lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return _fdmnes_header(first) is not None


def read_fdmnes_conv(path: Path) -> Spectrum:
    """FDMNES convolved output (``FDMNES`` banner, ``energy <xanes>`` names, table)."""
    lines = _read_lines(path)
    first, table = _table(path, lines)
    header = _header_lines(lines, first)
    names = _column_names(header[-1]) if header else []
    col = _pick_column(names, ["<xanes>"], table.shape[1])
    return _spectrum(path, table[:, 0], table[:, col], {"code": "fdmnes", "columns": names, "header": header})


def _sniff_fdmnes_conv(lines: list[str]) -> bool:
    header = [ln.strip() for ln in lines if ln.strip() and not _is_numeric_row(ln)][:5]
    return bool(header) and (header[0].upper() == "FDMNES" or any("<xanes>" in ln.lower() for ln in header))


# --------------------------------------------------------------------------- FEFF

#: Columns of FEFF's ``xmu.dat`` when the file does not name them.
FEFF_COLUMNS = ("omega", "e", "k", "mu", "mu0", "chi")


def read_feff(path: Path) -> Spectrum:
    """FEFF ``xmu.dat``: absolute energy ``omega`` (eV) and ``mu``."""
    lines = _read_lines(path)
    first, table = _table(path, lines)
    comments = [ln for ln in lines[:first] if ln.strip()]
    named = [_column_names(ln) for ln in comments if ln.lstrip().startswith("#")]
    names = next((n for n in reversed(named) if "omega" in [t.lower() for t in n]), None)
    if names is None or len(names) != table.shape[1]:
        if table.shape[1] != len(FEFF_COLUMNS):
            raise XanesnetError(f"FEFF xmu.dat needs columns {' '.join(FEFF_COLUMNS)}; found {table.shape[1]} unnamed columns "
                                "(pass --format for another format)", path=path)
        names = list(FEFF_COLUMNS)
    lowered = [n.lower() for n in names]
    if "mu" not in lowered:
        raise XanesnetError(f"FEFF file has no 'mu' column (columns: {' '.join(names)})", path=path)
    energy = table[:, lowered.index("omega")]
    meta: dict = {"code": "feff", "columns": names, "table": table, "header": comments}
    if "e" in lowered:
        fermi = energy - table[:, lowered.index("e")]
        meta["e_fermi"] = float(np.median(fermi))
        off = np.abs(fermi - meta["e_fermi"])
        if off.max() > _FERMI_TOLERANCE + 1e-6 * np.abs(energy).max():
            k = int(np.argmax(off))
            raise XanesnetError(f"column e is not omega minus one Fermi level (point {k + 1}: omega - e = {fermi[k]:g} eV, "
                                f"elsewhere {meta['e_fermi']:g} eV)", path=path)
    return _spectrum(path, energy, table[:, lowered.index("mu")], meta)


def _sniff_feff(lines: list[str]) -> bool:
    """A ``#`` line naming ``omega`` and ``mu``, or (that line lost) ``#`` lines naming FEFF over three or more columns.

    Such a table is never read as two-column data (its second column would be FEFF's ``e``, not ``mu``).
    """
    says_feff = False
    for ln in lines:
        s = ln.strip()
        if s.startswith("#"):
            tokens = [t.lower() for t in _column_names(s)]
            if "omega" in tokens and "mu" in tokens:
                return True
            if s.upper().startswith("# XDI"):
                return False
            says_feff = says_feff or _FEFF_BANNER.search(s) is not None
    return says_feff and any(_is_numeric_row(ln, 3) for ln in lines)


# --------------------------------------------------------------------------- ORCA


def read_orca(path: Path) -> Spectrum:
    """``orca_mapspc``-style table: header lines, column names, energy (eV) and intensity columns."""
    lines = _read_lines(path)
    first, table = _table(path, lines)
    header = _header_lines(lines, first)
    names = _column_names(header[-1]) if header else []
    col = _pick_column(names, ["TotalSpectrum", "Intensity", "Total"], table.shape[1])
    return _spectrum(path, table[:, 0], table[:, col], {"code": "orca", "columns": names, "header": header})


def _sniff_orca(lines: list[str]) -> bool:
    header = " ".join(ln for ln in lines if ln.strip() and not _is_numeric_row(ln)).lower()
    return "orca" in header or "totalspectrum" in header


# --------------------------------------------------------------------------- XDI

#: XDI column names of an absorption or emission signal, most processed first.
XDI_SIGNALS = ("norm", "mu", "mutrans", "mufluor", "normtrans", "normfluor", "intensity")


def xdi_fields(lines: list[str]) -> dict[str, dict[str, str]]:
    """The ``# Family.tag: value`` fields of an XDI header, as ``{family: {tag: value}}`` (lower-case names)."""
    fields: dict[str, dict[str, str]] = {}
    for ln in lines:
        s = ln.strip()
        if not s.startswith("#"):
            break
        s = s[1:].strip()
        if s.startswith("///") or s.startswith("----"):
            break
        key, sep, value = s.partition(":")
        if sep and "." in key and " " not in key.strip():
            family, tag = key.strip().split(".", 1)
            fields.setdefault(family.lower(), {})[tag.lower()] = value.strip()
    return fields


def read_xdi(path: Path) -> Spectrum:
    """XDI 1.0 file: ``Column.N`` names and units from the header, the table below it."""
    lines = _read_lines(path)
    if not _sniff_xdi(lines):
        raise XanesnetError("not an XDI file: the first line is not '# XDI/1.0 ...'", path=path, line=1)
    fields = xdi_fields(lines)
    first, table = _table(path, lines)
    columns = {int(k): v.split("#")[0].split() for k, v in fields.get("column", {}).items() if k.isdigit()}
    names = [(columns.get(i + 1) or [f"col{i + 1}"])[0].lower() for i in range(table.shape[1])]
    unit = (columns.get(1) or ["", "ev"])[1:2]
    if names[0] != "energy":
        raise XanesnetError(f"XDI Column.1 is {names[0]!r}; xanesnet needs energy (eV) first", path=path)
    energy = table[:, 0] * (1000.0 if unit and unit[0].lower() == "kev" else 1.0)
    col = {n: i for i, n in reversed(list(enumerate(names)))}
    signal = next((n for n in XDI_SIGNALS if n in col), None)
    if signal is not None:
        intensity = table[:, col[signal]]
    elif "i0" in col and "itrans" in col:
        signal, intensity = "-ln(itrans/i0)", -np.log(table[:, col["itrans"]] / table[:, col["i0"]])
    elif "i0" in col and "ifluor" in col:
        signal, intensity = "ifluor/i0", table[:, col["ifluor"]] / table[:, col["i0"]]
    else:
        signal, intensity = names[1], table[:, 1]
    element = fields.get("element", {})
    meta = {"code": "xdi", "xdi": fields, "columns": names, "signal": signal,
            "element": element.get("symbol"), "edge": element.get("edge")}
    return _spectrum(path, energy, intensity, meta)


def _sniff_xdi(lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return first.lstrip().startswith("#") and first.lstrip("# \t").upper().startswith("XDI/")


# --------------------------------------------------------------------------- Athena (xraylarch)


def read_athena(path: Path) -> Spectrum:
    """Athena project file via xraylarch: the first group's ``energy`` and ``mu`` (others are named in a warning)."""
    import logging

    try:
        from larch.io import read_athena as larch_read_athena
    except ImportError:
        raise XanesnetError("Athena project files need xraylarch: pip install 'xanesnet[larch]'", path=path) from None
    if not path.is_file():
        raise XanesnetError("no such file", path=path)
    try:
        project = larch_read_athena(str(path), do_preedge=False, do_bkg=False, do_fft=False)
        groups = list(project.groups.items())
    except Exception as exc:  # larch raises many kinds for a damaged project
        raise XanesnetError(f"cannot read Athena project ({type(exc).__name__}: {exc})", path=path) from None
    if not groups:
        raise XanesnetError("Athena project holds no spectra", path=path)
    name, group = groups[0]
    if len(groups) > 1:
        logging.getLogger(__name__).warning("%s: Athena project holds %d groups; read the first, %r", path, len(groups), name)
    meta = {"code": "athena", "group": name, "element": getattr(group, "atsym", None), "edge": getattr(group, "edge", None)}
    return _spectrum(path, np.asarray(group.energy, float), np.asarray(group.mu, float), meta)


def _sniff_athena(lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return "athena project file" in first.lower()


#: Format name -> reader and sniffer, most specific first (sniffers are tried in this order).
#: Add a format here and nowhere else.
SPECTRUM_FORMATS: dict[str, SpectrumFormat] = {
    "fdmnes-raw": SpectrumFormat(read=read_fdmnes_raw, sniff=_sniff_fdmnes_raw),
    "feff": SpectrumFormat(read=read_feff, sniff=_sniff_feff),
    "xdi": SpectrumFormat(read=read_xdi, sniff=_sniff_xdi),
    "athena": SpectrumFormat(read=read_athena, sniff=_sniff_athena),
    "fdmnes-conv": SpectrumFormat(read=read_fdmnes_conv, sniff=_sniff_fdmnes_conv),
    "orca": SpectrumFormat(read=read_orca, sniff=_sniff_orca),
    "two-column": SpectrumFormat(read=read_two_column, sniff=_sniff_two_column),
}


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path``, told from its first 40 lines."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":  # gzip: Athena saves its projects compressed
                return "athena"
    head = _read_lines(path)[:40]
    if not any(ln.strip() for ln in head):
        raise XanesnetError("empty file", path=path)
    for name, spec_format in SPECTRUM_FORMATS.items():
        if spec_format.sniff(head):
            return name
    raise XanesnetError(f"cannot tell the spectrum format; pass --format ({', '.join(SPECTRUM_FORMATS)})", path=path)


def read_spectrum(path: str | os.PathLike, *, fmt: str | None = None) -> Spectrum:
    """Read one spectrum, detecting the format from the content unless ``fmt`` names one."""
    path = Path(path)
    if fmt is not None:
        if fmt not in SPECTRUM_FORMATS:
            raise XanesnetError(f"unknown spectrum format {fmt!r}; known: {', '.join(SPECTRUM_FORMATS)}", path=path)
        return SPECTRUM_FORMATS[fmt].read(path)
    return SPECTRUM_FORMATS[detect_format(path)].read(path)


def validated(spectrum: Spectrum) -> Spectrum:
    """The one check of what a spectrum may be; returns it or raises :class:`XanesnetError` naming the file.

    Energy and intensity 1-D of equal length (2 to :data:`MAX_POINTS` points),
    finite, within :data:`MAX_ABS_ENERGY` and :data:`MAX_ABS_INTENSITY` in
    size, and energies strictly increasing.
    """
    where = spectrum.source or spectrum.name
    e, y = np.asarray(spectrum.energy), np.asarray(spectrum.intensity)
    if e.ndim != 1 or y.shape != e.shape:
        raise XanesnetError(f"energy and intensity must be 1-D of equal length, got shapes {e.shape} and {y.shape}", path=where)
    if len(e) < 2:
        raise XanesnetError(f"empty spectrum: {len(e)} point(s)", path=where)
    if len(e) > MAX_POINTS:
        raise XanesnetError(f"{len(e):,} points is more than the {MAX_POINTS:,} a spectrum may have", path=where)
    for label, v, limit, unit in (("energy", e, MAX_ABS_ENERGY, " eV"), ("intensity", y, MAX_ABS_INTENSITY, "")):
        if not np.all(np.isfinite(v)):
            raise XanesnetError(f"{label} is NaN or infinite at point {int(np.argmax(~np.isfinite(v))) + 1}", path=where)
        if np.abs(v).max() > limit:
            k = int(np.argmax(np.abs(v)))
            raise XanesnetError(f"{label} {v[k]:.4g}{unit} at point {k + 1} is absurd (beyond {limit:g}{unit} in size)", path=where)
    steps = np.diff(e)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        kind = "duplicate" if steps[k] == 0 else "decreasing"
        raise XanesnetError(f"energies are not strictly increasing ({kind} at point {k + 2}: {e[k]:g} -> {e[k + 1]:g} eV)", path=where)
    return spectrum
