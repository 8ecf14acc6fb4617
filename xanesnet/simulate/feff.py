"""FEFF10 input and one-molecule runs: K-edge XANES and K-beta XES.

FEFF (the ``feff10`` package, ``pip install xanesnet[simulate]``) is imported
only inside the functions that run it. :func:`feff_input` is pure and can be
tested without FEFF installed beyond its input types.

The FEFF input follows ``feff_3d/README.md`` of the reference data: the
absorber is potential 0, one potential per other element (sorted by atomic
number), all atoms centred on the absorber, K edge, S0^2 = 1. XES reuses the
potentials of the XANES run in the same work directory when both are asked
for (the ATOMIC and POT stages are skipped; the result is identical to a full
XES run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from ase.data import chemical_symbols

from xanesnet.errors import XanesnetError
from xanesnet.io.structures import FIRST_ROW_TM_Z, Structure, check_overlaps, resolve_absorber

logger = logging.getLogger(__name__)

#: Spectra FEFF computes here; ``"both"`` in :func:`simulate_molecule` means all of them.
SPECTRA: tuple[str, ...] = ("xanes", "xes")
#: Column names of FEFF's ``xmu.dat`` table, as stored.
XMU_COLUMNS: tuple[str, ...] = ("omega", "e", "k", "mu", "mu0", "chi")

_INSTALL_HINT = "feff10 is not installed; install it with: pip install xanesnet[simulate]"


@dataclass(frozen=True)
class FeffSettings:
    """Everything that decides a FEFF run; every default is here.

    Parameters
    ----------
    edge
        Absorption edge (``EDGE`` card).
    s02
        Amplitude reduction factor S0^2 (``S02`` card).
    xanes_cards
        Cards that make the run a XANES run.
    xes_cards
        Cards that make the run a (K-beta, valence-to-core) XES run.
    common_cards
        Cards shared by both runs (self-consistent potentials, full multiple
        scattering radius in Angstrom, no path expansion).
    reuse_potentials
        When both spectra are computed, run XES in the XANES work directory
        without repeating the ATOMIC and POT stages.
    timeout
        Time limit (s) for each FEFF stage; a stage that runs longer is killed
        and the molecule recorded as failed. Does not change results.
    min_distance
        Atoms closer than this (Angstrom) make a geometry invalid.
    """

    edge: str = "K"
    s02: float = 1.0
    xanes_cards: tuple[str, ...] = ("XANES 4.0",)
    xes_cards: tuple[str, ...] = ("XES -40 15 0.25",)
    common_cards: tuple[str, ...] = ("SCF 2.5 0 6", "FMS 4.0", "RPATH -1")
    reuse_potentials: bool = True
    timeout: float = 600.0
    min_distance: float = 0.5

    def __post_init__(self) -> None:
        for name in ("xanes_cards", "xes_cards", "common_cards"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise XanesnetError(f"FEFF setting {name} must be a list of cards, not the string {value!r}")
            object.__setattr__(self, name, tuple(str(c) for c in value))
        if not self.timeout > 0:
            raise XanesnetError(f"FEFF setting timeout must be positive, got {self.timeout}")
        if not self.min_distance >= 0:
            raise XanesnetError(f"FEFF setting min_distance must be >= 0, got {self.min_distance}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeffSettings:
        """Build settings from a dict; unknown keys are an error that lists the valid ones."""
        from xanesnet.settings import check_keys

        check_keys(values, [f.name for f in dataclasses.fields(cls)], "FEFF")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def result_dict(self) -> dict[str, Any]:
        """The settings that change FEFF's output (``timeout`` excluded)."""
        d = self.to_dict()
        d.pop("timeout")
        return d

    def cards(self, spectrum: str) -> list[str]:
        """The non-structural cards of a ``"xanes"`` or ``"xes"`` run."""
        _check_spectrum(spectrum, allow_both=False)
        own = self.xanes_cards if spectrum == "xanes" else self.xes_cards
        return [*own, *self.common_cards]


@dataclass
class MoleculeResult:
    """What one molecule's FEFF runs gave.

    ``spectra`` maps ``"xanes"``/``"xes"`` to the raw ``xmu.dat`` table
    (columns :data:`XMU_COLUMNS`); a spectrum is present only when its run
    succeeded. ``error`` is empty when every requested spectrum was computed.
    """

    name: str
    absorber: int
    spectra: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cards: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""
    error_detail: str = ""
    feff_version: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def import_feff() -> Any:
    """Import ``feff10`` or raise :class:`XanesnetError` with the install command."""
    try:
        import feff10
    except ImportError:
        raise XanesnetError(_INSTALL_HINT) from None
    return feff10


def feff_version() -> str:
    """Version string of the FEFF package, e.g. ``"feff10-rs 0.2.4"``."""
    return f"feff10-rs {getattr(import_feff(), '__version__', 'unknown')}"


def check_structure(structure: Structure, absorber: int | str | None = None, *,
                    settings: FeffSettings | None = None) -> int:
    """Validate a molecule for FEFF and return the absorber index.

    Raises :class:`XanesnetError` when there is no (unique) absorber, the
    absorber is not a first-row transition metal (Ti-Zn), or atoms overlap.
    """
    settings = settings or FeffSettings()
    index = resolve_absorber(structure, absorber)
    z = int(structure.numbers[index])
    if z not in FIRST_ROW_TM_Z:
        raise XanesnetError(f"absorber {chemical_symbols[z]} (atom {index}) is not a first-row transition metal (Ti-Zn)",
                            path=structure.source or structure.name)
    if len(structure) > 1:
        check_overlaps(structure, min_distance=settings.min_distance)
    return index


def feff_input(structure: Structure, absorber: int | str | None, spectrum: str,
               settings: FeffSettings | None = None) -> Any:
    """Build the ``feff10.FeffInput`` of one run.

    Parameters
    ----------
    structure
        The molecule (positions in Angstrom).
    absorber
        Absorber as accepted by :func:`~xanesnet.io.structures.resolve_absorber`.
    spectrum
        ``"xanes"`` or ``"xes"``.
    settings
        FEFF settings; defaults when ``None``.

    Returns
    -------
    feff10.FeffInput
        Absorber first as potential 0 at the origin, then the other atoms in
        file order; potentials 1, 2, ... are the other elements by increasing Z.
    """
    feff10 = import_feff()
    settings = settings or FeffSettings()
    _check_spectrum(spectrum, allow_both=False)
    index = check_structure(structure, absorber, settings=settings)
    numbers = [int(z) for z in structure.numbers]
    positions = np.asarray(structure.positions, dtype=float) - structure.positions[index]
    others = [i for i in range(len(numbers)) if i != index]
    elements = sorted({numbers[i] for i in others})
    ipot = {z: k + 1 for k, z in enumerate(elements)}
    potentials = [feff10.Potential(0, numbers[index], chemical_symbols[numbers[index]])]
    potentials += [feff10.Potential(ipot[z], z, chemical_symbols[z]) for z in elements]
    atoms = [feff10.Atom(0.0, 0.0, 0.0, 0, chemical_symbols[numbers[index]])]
    atoms += [feff10.Atom(*(float(c) for c in positions[i]), ipot[numbers[i]], chemical_symbols[numbers[i]]) for i in others]
    title = f"{structure.name} {chemical_symbols[numbers[index]]} {settings.edge}-edge {spectrum.upper()}"
    return feff10.FeffInput(title=[title[:70]], edge=settings.edge, s02=settings.s02, potentials=potentials,
                            atoms=atoms, other_cards=settings.cards(spectrum))


def simulate_molecule(structure: Structure, *, absorber: int | str | None = None, spectrum: str = "both",
                      settings: FeffSettings | None = None, quiet: bool = True) -> MoleculeResult:
    """Run FEFF on one molecule in a temporary work directory (removed afterwards).

    Parameters
    ----------
    structure
        The molecule.
    absorber
        Absorber as accepted by :func:`~xanesnet.io.structures.resolve_absorber`.
    spectrum
        ``"xanes"``, ``"xes"`` or ``"both"``.
    settings
        FEFF settings; defaults when ``None``.
    quiet
        Send FEFF's (copious) output on file descriptors 1 and 2 to
        ``/dev/null`` while it runs.

    Returns
    -------
    MoleculeResult
        Never raises for a bad geometry, a FEFF crash or a time-out: those are
        recorded in ``error`` (one line) and ``error_detail`` (FEFF's text).
        A missing ``feff10`` raises :class:`XanesnetError`.
    """
    settings = settings or FeffSettings()
    wanted = _check_spectrum(spectrum, allow_both=True)
    feff10 = import_feff()
    result = MoleculeResult(name=structure.name, absorber=-1, feff_version=feff_version())
    try:
        result.absorber = check_structure(structure, absorber, settings=settings)
    except XanesnetError as exc:
        result.error = str(exc)
        return result
    _remove_stale_work_dirs()
    with tempfile.TemporaryDirectory(prefix=f"{_WORK_PREFIX}{os.getpid()}-") as work_dir, (_silenced_fds() if quiet else contextlib.nullcontext()):
        have_potentials = False
        for kind in wanted:
            stages = None
            if have_potentials and settings.reuse_potentials:
                skip = (feff10.Stage.ATOMIC, feff10.Stage.POT)
                stages = [s for s in feff10.Stage.default_pipeline() if s not in skip]
            start = time.perf_counter()
            try:
                inp = feff_input(structure, result.absorber, kind, settings)
                config = feff10.FeffConfig(work_dir, inp, stages=stages, stage_timeout=float(settings.timeout))
                table = np.asarray(feff10.FeffPipeline(config).run().read_xmu().columns, dtype=np.float64).T
                _check_table(table)
            except Exception as exc:  # FEFF raises several types; any of them fails this molecule only
                text = str(exc).strip() or type(exc).__name__
                result.error = f"{structure.source or structure.name}: FEFF {kind.upper()} run failed: {text.splitlines()[0]}"
                result.error_detail = f"{type(exc).__name__}: {text}"
                result.seconds[kind] = time.perf_counter() - start
                break
            result.seconds[kind] = time.perf_counter() - start
            result.spectra[kind] = table
            result.cards[kind] = settings.cards(kind)
            have_potentials = True
    logger.debug("%s: %s in %s", structure.name, "failed" if result.error else "done", result.seconds)
    return result


_WORK_PREFIX = "xanesnet-feff-"
_stale_checked = False


def _remove_stale_work_dirs() -> None:
    """Once per process, delete FEFF work directories left by killed processes (their pid is gone)."""
    global _stale_checked
    if _stale_checked:
        return
    _stale_checked = True
    for path in Path(tempfile.gettempdir()).glob(f"{_WORK_PREFIX}*-*"):
        pid = path.name[len(_WORK_PREFIX):].split("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # alive but not ours


def _check_table(table: np.ndarray) -> None:
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] != len(XMU_COLUMNS):
        raise ValueError(f"xmu.dat has shape {table.shape}, expected (n, {len(XMU_COLUMNS)})")
    if not np.all(np.isfinite(table)):
        raise ValueError("xmu.dat holds NaN or infinite values")


def _check_spectrum(spectrum: str, *, allow_both: bool) -> tuple[str, ...]:
    valid = (*SPECTRA, "both") if allow_both else SPECTRA
    if spectrum not in valid:
        raise XanesnetError(f"spectrum must be one of {', '.join(map(repr, valid))}, not {spectrum!r}")
    return SPECTRA if spectrum == "both" else (spectrum,)


_fd_lock = threading.Lock()
_fd_users = 0
_fd_saved: list[int] = []


@contextlib.contextmanager
def _silenced_fds() -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``/dev/null`` (FEFF's stages inherit them); thread-safe."""
    global _fd_users
    with _fd_lock:
        if _fd_users == 0:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            _fd_saved[:] = [os.dup(1), os.dup(2)]
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            os.close(null)
        _fd_users += 1
    try:
        yield
    finally:
        with _fd_lock:
            _fd_users -= 1
            if _fd_users == 0:
                os.dup2(_fd_saved[0], 1)
                os.dup2(_fd_saved[1], 2)
                for fd in _fd_saved:
                    os.close(fd)
                _fd_saved.clear()
