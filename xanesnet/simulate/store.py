"""The HDF5 file of simulated spectra, written so that a kill at any moment loses nothing.

Layout of ``OUT.h5``::

    /                      attrs: format, format_version, spectrum, absorber, settings (JSON)
    /<name>/               one group per molecule (name = structure file stem)
        attrs              status ("done" | "failed"), error, error_detail, source,
                           absorber (0-based index, -1 if unknown), charge, spin
                           (when the file gave them), feff_version, created (UTC),
                           seconds_xanes, seconds_xes, cards_xanes, cards_xes
        numbers   (n,)     atomic numbers          } absent when the file
        positions (n, 3)   Angstrom, as read       } could not be read
        xanes     (m, 6)   raw FEFF xmu.dat table, columns omega e k mu mu0 chi
        xes       (m, 6)   likewise (present only when that run succeeded)

Crash safety. The parent process alone writes. Each finished molecule is
first written as its own small HDF5 file in the sidecar directory
``OUT.h5.parts/`` (written under a temporary name, fsync'ed, then renamed, so
a part is either complete or absent). Every so often, and at the start and end
of a run, the parts are merged: ``OUT.h5`` is copied to ``OUT.h5.merging``,
the parts are added to the copy, the copy is fsync'ed and renamed over
``OUT.h5``, and only then are the parts deleted. A kill at any point leaves
``OUT.h5`` either as before or as after the merge; leftover parts are merged
again (idempotently) by the next run. ``OUT.h5`` is never opened for writing
in place, so HDF5's own inconsistency after a kill mid-write cannot occur.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.files import durable_replace
from xanesnet.io.spectra import Spectrum
from xanesnet.io.structures import Structure
from xanesnet.simulate.feff import SPECTRA, XMU_COLUMNS, MoleculeResult

logger = logging.getLogger(__name__)

FORMAT = "xanesnet-feff-simulations"
FORMAT_VERSION = 1
_PART_SUFFIX = ".h5"
_TMP_SUFFIX = ".tmp"


def parts_dir(out_h5: str | os.PathLike) -> Path:
    """Sidecar directory holding finished molecules not yet merged into ``out_h5``."""
    out_h5 = Path(out_h5)
    return out_h5.with_name(out_h5.name + ".parts")


def ensure_store(out_h5: Path, header: dict[str, str]) -> None:
    """Create ``out_h5`` with ``header`` as root attributes, or check an existing file has the same header."""
    if out_h5.exists():
        try:
            with h5py.File(out_h5, "r") as f:
                found = {k: _str(v) for k, v in f.attrs.items()}
        except OSError as exc:
            raise XanesnetError(f"cannot open HDF5 file ({exc})", path=out_h5) from None
        if found.get("format") != FORMAT:
            raise XanesnetError(f"not a xanesnet simulation file (format is {found.get('format')!r})", path=out_h5)
        diff = [k for k in header if k not in ("format", "format_version") and found.get(k) != header[k]]
        if diff:
            details = "; ".join(f"{k}: file has {found.get(k)}, asked for {header[k]}" for k in diff)
            raise XanesnetError(f"was written with other settings ({details}); use another output file", path=out_h5)
        return
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_h5.with_name(out_h5.name + _TMP_SUFFIX)
    with h5py.File(tmp, "w") as f:
        f.attrs.update(header)
    _commit(tmp, out_h5)


def recorded(out_h5: Path) -> dict[str, str]:
    """Status (``"done"``/``"failed"``) and error of every molecule in ``out_h5`` and its pending parts."""
    status: dict[str, str] = {}
    if out_h5.exists():
        with h5py.File(out_h5, "r") as f:
            for name, group in f.items():
                status[name] = _status_of(group)
    for part in _parts(out_h5):
        try:
            with h5py.File(part, "r") as f:
                for name, group in f.items():
                    status[name] = _status_of(group)
        except OSError:
            continue  # an unreadable part is set aside by the next merge
    return status


def write_part(out_h5: Path, result: MoleculeResult, structure: Structure | None, *, source: str) -> Path:
    """Write one finished molecule atomically as ``OUT.h5.parts/<name>.h5``."""
    from xanesnet.io.files import check_free_space

    directory = parts_dir(out_h5)
    directory.mkdir(parents=True, exist_ok=True)
    check_free_space(directory, 4 * 2**20)  # a part is far smaller; h5py must not meet a full disk mid-write
    final = directory / f"{result.name}{_PART_SUFFIX}"
    tmp = directory / f"{result.name}{_PART_SUFFIX}{_TMP_SUFFIX}"
    with h5py.File(tmp, "w") as f:
        g = f.create_group(result.name)
        g.attrs["status"] = "failed" if result.error else "done"
        g.attrs["error"] = result.error
        g.attrs["error_detail"] = result.error_detail
        g.attrs["source"] = source
        g.attrs["absorber"] = int(result.absorber)
        g.attrs["feff_version"] = result.feff_version
        g.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if structure is not None:
            g.create_dataset("numbers", data=np.asarray(structure.numbers, dtype=np.int64))
            g.create_dataset("positions", data=np.asarray(structure.positions, dtype=np.float64))
            for key in ("charge", "spin"):
                if getattr(structure, key) is not None:
                    g.attrs[key] = float(getattr(structure, key))
        for kind, seconds in result.seconds.items():
            g.attrs[f"seconds_{kind}"] = float(seconds)
        for kind, cards in result.cards.items():
            g.attrs[f"cards_{kind}"] = " | ".join(cards)
        for kind, table in result.spectra.items():
            d = g.create_dataset(kind, data=np.asarray(table, dtype=np.float64))
            d.attrs["columns"] = " ".join(XMU_COLUMNS)
    _commit(tmp, final)
    return final


def merge_parts(out_h5: Path) -> int:
    """Merge the pending parts into ``out_h5`` by copy, add, fsync and rename; return how many were merged.

    A part replaces an earlier group of the same name unless that group is
    ``"done"`` (so retried failures are updated and a part merged twice is
    harmless).
    """
    parts = _parts(out_h5)
    if not parts:
        return 0
    from xanesnet.io.files import check_free_space

    staging = out_h5.with_name(out_h5.name + ".merging")
    check_free_space(out_h5.parent, out_h5.stat().st_size + sum(p.stat().st_size for p in parts))  # before h5py writes
    shutil.copyfile(out_h5, staging)
    merged: list[Path] = []
    with h5py.File(staging, "a") as dst:
        for part in parts:
            try:
                src = h5py.File(part, "r")
            except OSError as exc:
                logger.warning("%s: unreadable part file set aside (%s)", part, exc)
                os.replace(part, part.with_name(part.name + ".bad"))
                continue
            with src:
                for name, group in src.items():
                    if name in dst:
                        if _status_of(dst[name]) == "done":
                            continue
                        del dst[name]
                    src.copy(group, dst, name=name)
            merged.append(part)
    _commit(staging, out_h5)
    for part in merged:
        part.unlink(missing_ok=True)
    return len(merged)


def clean_stale(out_h5: Path) -> None:
    """Remove half-written temporaries a killed run may have left (never a complete part)."""
    for stale in (out_h5.with_name(out_h5.name + ".merging"), out_h5.with_name(out_h5.name + _TMP_SUFFIX)):
        stale.unlink(missing_ok=True)
    directory = parts_dir(out_h5)
    if directory.is_dir():
        for tmp in directory.glob(f"*{_TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)


def remove_empty_parts_dir(out_h5: Path) -> None:
    """Remove ``OUT.h5.parts/`` once everything in it is merged (a directory still holding files stays)."""
    try:
        parts_dir(out_h5).rmdir()
    except OSError:  # absent, or not empty (e.g. a part set aside as unreadable)
        pass


def _parts(out_h5: Path) -> list[Path]:
    directory = parts_dir(out_h5)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(_PART_SUFFIX))


_commit = durable_replace  # module-level name: tests patch it to kill mid-write


def _status_of(group: Any) -> str:
    return _str(group.attrs.get("status", "failed"))


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class SimulatedSpectrum:
    """One molecule with a FEFF spectrum: the structure, the absorber (0-based) and the raw spectrum.

    ``spectrum.energy`` is FEFF's absolute energy ``omega`` (eV) and
    ``spectrum.intensity`` its ``mu``; ``spectrum.meta["table"]`` holds the whole
    ``xmu.dat`` table.
    """

    structure: Structure
    absorber: int
    spectrum: Spectrum


def read_simulations(path: str | os.PathLike, spectrum: str = "xanes") -> list[SimulatedSpectrum]:
    """Read every molecule of a simulation file that has the requested spectrum.

    Parameters
    ----------
    path
        File written by :func:`xanesnet.simulate.simulate`.
    spectrum
        ``"xanes"`` or ``"xes"``.

    Returns
    -------
    list of SimulatedSpectrum
        In name order. Molecules whose run for this spectrum failed are left
        out. Molecules finished since the last merge (still in the ``.parts``
        directory) are not included.
    """
    path = Path(path)
    if spectrum not in SPECTRA:
        raise XanesnetError(f"spectrum must be one of {', '.join(map(repr, SPECTRA))}, not {spectrum!r}")
    if not path.is_file():
        raise XanesnetError("no such file", path=path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise XanesnetError(f"cannot open HDF5 file ({exc})", path=path) from None
    out: list[SimulatedSpectrum] = []
    with f:
        if _str(f.attrs.get("format", "")) != FORMAT:
            raise XanesnetError("not a xanesnet simulation file", path=path)
        for name in sorted(f):
            g = f[name]
            if spectrum not in g or "numbers" not in g:
                continue
            table = np.asarray(g[spectrum][()], dtype=np.float64)
            charge = g.attrs.get("charge")
            spin = g.attrs.get("spin")
            structure = Structure(name=name, numbers=np.asarray(g["numbers"][()], dtype=np.int64),
                                  positions=np.asarray(g["positions"][()], dtype=np.float64),
                                  charge=None if charge is None else float(charge),
                                  spin=None if spin is None else float(spin),
                                  source=_str(g.attrs.get("source", "")) or None)
            spec = Spectrum(name=name, energy=table[:, XMU_COLUMNS.index("omega")].copy(),
                            intensity=table[:, XMU_COLUMNS.index("mu")].copy(), source=f"{path}:{name}/{spectrum}",
                            meta={"table": table, "columns": XMU_COLUMNS,
                                  "cards": _str(g.attrs.get(f"cards_{spectrum}", "")),
                                  "feff_version": _str(g.attrs.get("feff_version", ""))})
            out.append(SimulatedSpectrum(structure=structure, absorber=int(g.attrs["absorber"]), spectrum=spec))
    return out


def header_for(spectrum: str, absorber: int | str | None, settings_result: dict[str, Any]) -> dict[str, str]:
    """Root attributes of a simulation file; a rerun must match them."""
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION), "spectrum": spectrum,
            "absorber": json.dumps(absorber), "settings": json.dumps(settings_result, sort_keys=True)}
