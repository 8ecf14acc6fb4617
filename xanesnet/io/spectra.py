"""Read spectra from the files theory codes write.

One registry, :data:`SPECTRUM_FORMATS`, maps a format name to a reader and a
content sniffer; :func:`read_spectrum` picks the format by content unless one
is given. Every reader returns a :class:`Spectrum` (energies in eV, strictly
increasing, finite intensities) or raises :class:`XanesnetError` naming the
file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from xanesnet.errors import XanesnetError


@dataclass(frozen=True)
class Spectrum:
    """Intensity on an energy grid (eV); ``meta`` holds what the file said (e.g. FDMNES ``E_edge``)."""

    name: str
    energy: np.ndarray
    intensity: np.ndarray
    source: str | None = None
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SpectrumFormat:
    """A reader and a test that tells, from the first lines, whether a file is of this format."""

    read: Callable[[Path], Spectrum]
    sniff: Callable[[list[str]], bool]


def _numeric_rows(lines: list[str], *, min_cols: int) -> tuple[int, np.ndarray]:
    """Index of the first all-numeric row and the table from there on."""
    start = None
    for k, ln in enumerate(lines):
        parts = ln.split()
        if len(parts) >= min_cols and all(_is_number(p) for p in parts[:min_cols]):
            start = k
            break
    if start is None:
        return -1, np.empty((0, min_cols))
    rows = []
    for k, ln in enumerate(lines[start:], start=start):
        parts = ln.split()
        if not parts:
            continue
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise XanesnetError(f"non-numeric value in {ln.strip()[:60]!r}", line=k + 1) from None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise XanesnetError("rows have different numbers of columns")
    return start, np.asarray(rows, dtype=np.float64)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise XanesnetError("no such file" if not path.exists() else "not a file", path=path)
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError:
        raise XanesnetError("not a text file", path=path) from None


def read_two_column(path: Path) -> Spectrum:
    """Energy and intensity columns after any header lines (FDMNES convolved, ORCA-style, plain)."""
    lines = _read_lines(path)
    try:
        _, table = _numeric_rows(lines, min_cols=2)
    except XanesnetError as exc:
        raise XanesnetError(str(exc), path=path) from None
    if len(table) == 0:
        raise XanesnetError("empty spectrum: no numeric energy/intensity rows", path=path)
    return validated(Spectrum(name=path.stem, energy=table[:, 0], intensity=table[:, 1], source=str(path)))


def _sniff_two_column(lines: list[str]) -> bool:
    return any(len(ln.split()) >= 2 and all(_is_number(p) for p in ln.split()[:2]) for ln in lines)


#: Format name -> reader. Add a format here and nowhere else.
SPECTRUM_FORMATS: dict[str, SpectrumFormat] = {
    "two-column": SpectrumFormat(read=read_two_column, sniff=_sniff_two_column),
}


def read_spectrum(path: str | os.PathLike, *, fmt: str | None = None) -> Spectrum:
    """Read one spectrum, detecting the format from the content unless ``fmt`` names one."""
    path = Path(path)
    if fmt is not None:
        if fmt not in SPECTRUM_FORMATS:
            raise XanesnetError(f"unknown spectrum format {fmt!r}; known: {', '.join(SPECTRUM_FORMATS)}", path=path)
        return SPECTRUM_FORMATS[fmt].read(path)
    head = _read_lines(path)[:40]
    if not any(ln.strip() for ln in head):
        raise XanesnetError("empty file", path=path)
    for spec_format in SPECTRUM_FORMATS.values():
        if spec_format.sniff(head):
            return spec_format.read(path)
    raise XanesnetError(f"cannot tell the spectrum format; pass --format ({', '.join(SPECTRUM_FORMATS)})", path=path)


def validated(spectrum: Spectrum) -> Spectrum:
    """Check energies are finite and strictly increasing and intensities finite."""
    where = spectrum.source or spectrum.name
    e, y = spectrum.energy, spectrum.intensity
    if len(e) < 2:
        raise XanesnetError(f"empty spectrum: {len(e)} point(s)", path=where)
    if not np.all(np.isfinite(e)):
        raise XanesnetError(f"energy is NaN or infinite at point {int(np.argmax(~np.isfinite(e))) + 1}", path=where)
    if not np.all(np.isfinite(y)):
        raise XanesnetError(f"intensity is NaN or infinite at point {int(np.argmax(~np.isfinite(y))) + 1}", path=where)
    steps = np.diff(e)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        kind = "duplicate" if steps[k] == 0 else "decreasing"
        raise XanesnetError(f"energies are not strictly increasing ({kind} at point {k + 2}: {e[k]:g} -> {e[k + 1]:g} eV)", path=where)
    return spectrum
