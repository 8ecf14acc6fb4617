"""Energy grids (absolute, or relative to the edge energy E0) and resampling onto them.

A grid is written ``kind:start:stop:n`` (eV), e.g. ``absolute:7097:7172:226``
or ``relative:-15:60:226``; its JSON form is
``{"kind": "relative", "start": -15.0, "stop": 60.0, "n": 226}``.

A spectrum resampled onto a relative grid keeps its energies relative to E0
(``Spectrum.energy`` holds the offsets, ``Spectrum.e0`` the edge and
``meta["energy_reference"] == "e0"``), so spectra of different molecules
share one grid. A model trained on such spectra predicts relative energies;
:func:`to_absolute` (or :meth:`EnergyGrid.absolute`) places them on the
absolute scale given an E0, which at prediction time the user must supply
(the true edge of an unknown molecule is not known).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum, validated
from xanesnet.settings import Settings, choice, number, set_fields

GRID_KINDS = ("absolute", "relative")
RESAMPLE_METHODS = ("linear", "cubic")
#: Energies may fall short of a grid end by this much (eV) and still count as covering it.
COVERAGE_TOLERANCE = 1e-3
#: The most points a target grid may have.
MAX_GRID_POINTS = 100_000


@dataclass(frozen=True)
class EnergyGrid(Settings):
    """``n`` evenly spaced energies from ``start`` to ``stop`` (eV), absolute or relative to E0."""

    section = "grid"

    kind: str
    start: float
    stop: float
    n: int

    def __post_init__(self) -> None:
        choice("grid", "kind", self.kind, GRID_KINDS)
        start, stop = number("grid", "start", self.start), number("grid", "stop", self.stop)
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or not 2 <= self.n <= MAX_GRID_POINTS:
            raise XanesnetError(f"grid: n must be an integer from 2 to {MAX_GRID_POINTS:,}, not {self.n!r}")
        if not start < stop:
            raise XanesnetError(f"grid: start must be below stop, got {start:g} and {stop:g} eV")
        set_fields(self, start=start, stop=stop, n=int(self.n))

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | "EnergyGrid") -> "EnergyGrid":
        """A grid from ``kind:start:stop:n`` (``kind`` defaults to absolute), a JSON dict or a grid."""
        if isinstance(spec, (EnergyGrid, Mapping)):
            return cls.from_dict(spec)
        parts = str(spec).strip().split(":")
        if len(parts) == 3:
            parts = ["absolute", *parts]
        usage = "kind:start:stop:n, e.g. absolute:7097:7172:226 or relative:-15:60:226"
        if len(parts) != 4:
            raise XanesnetError(f"grid {spec!r} is not {usage}")
        try:
            start, stop, n = float(parts[1]), float(parts[2]), int(parts[3])
        except ValueError:
            raise XanesnetError(f"grid {spec!r} is not {usage}") from None
        return cls(kind=parts[0].strip().lower(), start=start, stop=stop, n=n)

    def __str__(self) -> str:
        return f"{self.kind}:{self.start:g}:{self.stop:g}:{self.n}"

    @property
    def relative(self) -> bool:
        return self.kind == "relative"

    @property
    def step(self) -> float:
        return (self.stop - self.start) / (self.n - 1)

    def energies(self) -> np.ndarray:
        """The grid's energies (eV): absolute, or offsets from E0 for a relative grid."""
        return np.linspace(self.start, self.stop, self.n)

    def absolute(self, e0: float | None = None) -> np.ndarray:
        """Absolute energies (eV); a relative grid needs the edge energy ``e0`` (eV)."""
        if not self.relative:
            return self.energies()
        if e0 is None:
            raise XanesnetError(f"the grid {self} is relative to the edge energy E0; give E0 (eV) to place it on the "
                                "absolute energy scale")
        return float(e0) + self.energies()


def parse_grid(spec: str | Mapping[str, Any] | EnergyGrid) -> EnergyGrid:
    """A grid from ``kind:start:stop:n``, a JSON dict or a grid (see :meth:`EnergyGrid.parse`)."""
    return EnergyGrid.parse(spec)


def check_coverage(spectrum: Spectrum, lo: float, hi: float, *, note: str = "") -> None:
    """Fail, naming the file and the short end, unless the spectrum's energies span ``lo``-``hi`` (eV)."""
    e = spectrum.energy
    short_lo = e[0] > lo + COVERAGE_TOLERANCE
    short_hi = e[-1] < hi - COVERAGE_TOLERANCE
    if short_lo or short_hi:
        end = "both ends" if short_lo and short_hi else "the low end" if short_lo else "the high end"
        raise XanesnetError(f"covers {e[0]:g}-{e[-1]:g} eV but the grid needs {lo:g}-{hi:g} eV{note}: short at {end}",
                            path=spectrum.source or spectrum.name)


def target_energies(spectrum: Spectrum, grid: EnergyGrid, e0: float | None) -> np.ndarray:
    """Absolute energies (eV) the grid asks of this spectrum, after checking the spectrum covers them."""
    if grid.relative and e0 is None:
        raise XanesnetError(f"the grid {grid} is relative to E0 but no E0 was given", path=spectrum.source or spectrum.name)
    energy = grid.absolute(e0)
    note = f" ({grid} around E0 = {e0:.2f} eV)" if grid.relative else ""
    check_coverage(spectrum, float(energy[0]), float(energy[-1]), note=note)
    return np.clip(energy, spectrum.energy[0], spectrum.energy[-1])


def interpolate(energy: np.ndarray, intensity: np.ndarray, at: np.ndarray, *, method: str = "linear") -> np.ndarray:
    """Intensity at energies ``at`` (inside the data), by linear or cubic-spline interpolation."""
    choice("resampling", "method", method, RESAMPLE_METHODS)
    if method == "linear" or len(energy) < 4:
        return np.interp(at, energy, intensity)
    from scipy.interpolate import CubicSpline

    return CubicSpline(energy, intensity)(at)


def resample(spectrum: Spectrum, grid: EnergyGrid | str, *, e0: float | None = None, method: str = "linear") -> Spectrum:
    """The spectrum on ``grid``; a relative grid needs ``e0`` (eV) or ``spectrum.e0``.

    The result's energies are the grid's own (offsets from E0 for a relative
    grid). Fails, naming the file and the short end, if the spectrum does not
    cover the grid.
    """
    grid = parse_grid(grid)
    spectrum = validated(spectrum)
    e0 = spectrum.e0 if e0 is None else float(e0)
    at = target_energies(spectrum, grid, e0)
    values = interpolate(spectrum.energy, spectrum.intensity, at, method=method)
    return on_grid(spectrum, grid, values, e0=e0)


def on_grid(spectrum: Spectrum, grid: EnergyGrid, values: np.ndarray, *, e0: float | None) -> Spectrum:
    """A copy of ``spectrum`` holding ``values`` on ``grid`` (energies relative to E0 for a relative grid)."""
    meta = {**spectrum.meta, "grid": str(grid)}
    if grid.relative:
        meta["energy_reference"] = "e0"
    else:
        meta.pop("energy_reference", None)
    return dataclasses.replace(spectrum, energy=grid.energies(), intensity=np.asarray(values, float), meta=meta, e0=e0)


def to_absolute(spectrum: Spectrum, *, e0: float | None = None) -> Spectrum:
    """A spectrum on a relative grid placed on the absolute energy scale.

    ``e0`` (eV) defaults to ``spectrum.e0``; spectra already on absolute
    energies are returned unchanged.
    """
    if spectrum.meta.get("energy_reference") != "e0":
        return spectrum
    e0 = spectrum.e0 if e0 is None else float(e0)
    if e0 is None:
        raise XanesnetError("the spectrum's energies are relative to the edge energy E0; give E0 (eV) to place them on "
                            "the absolute energy scale", path=spectrum.source or spectrum.name)
    meta = {k: v for k, v in spectrum.meta.items() if k != "energy_reference"}
    return dataclasses.replace(spectrum, energy=spectrum.energy + e0, meta=meta, e0=e0)


def grid_from_json(value: Any, source: str | os.PathLike | None = None) -> EnergyGrid | None:
    """A grid from its JSON value (dict or ``kind:start:stop:n`` string), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return EnergyGrid.parse(value)
    return EnergyGrid.from_dict(value, source=source)
