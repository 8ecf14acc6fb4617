"""One entry point: broaden, shift, find E0, normalise and put a spectrum on a common grid.

JSON form of :class:`ProcessSettings` (every key optional; defaults below)::

    {"broadening": "fdmnes" | {...BroadeningSettings...} | null,
     "shift": 0.0,
     "edge": {"smooth": 3.0, "step": 0.05, "window": null},
     "normalisation": {"pre_edge": [-30, -10], "pre_order": 0, "post_edge": [10, 50], "post_order": 0} | null,
     "grid": "relative:-15:60:226" | {"kind": ..., "start": ..., "stop": ..., "n": ...} | null,
     "method": "linear",
     "step": 0.2,
     "mean_intensity": null}
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum, validated
from xanesnet.settings import Settings, choice, number, set_fields
from xanesnet.spectra.broadening import BroadeningSettings, broaden, broadening_from_json
from xanesnet.spectra.edge import EdgeSettings, NormalisationSettings, edge_energy, fit_edge_step
from xanesnet.spectra.grid import RESAMPLE_METHODS, EnergyGrid, grid_from_json, interpolate, on_grid, target_energies

logger = logging.getLogger(__name__)

#: The most points of the uniform working grid a spectrum is broadened on (200 keV at 0.2 eV... is absurd;
#: 40 keV at the default 0.2 eV step is allowed).
MAX_WORKING_POINTS = 200_000
#: eV: with a fixed (absolute) target grid, the working grid spans the target this far beyond each end.
WORKING_MARGIN = 100.0
#: Kernel evaluations (working points x input points) one broadening may take: about 10 s of arithmetic.
MAX_KERNEL_ELEMENTS = 2e9


@dataclass(frozen=True)
class ProcessSettings(Settings):
    """What :func:`process` does, in this order.

    Parameters
    ----------
    broadening
        Broadening (settings or a preset name from ``BROADENING_PRESETS``),
        applied to the spectrum as read, so ``ef`` is measured in the file's
        own frame; ``None`` for none.
    shift
        Added to every energy (eV) after broadening, e.g. to align one code's
        edge with another's.
    edge
        How E0 is found (always found, and returned as ``Spectrum.e0``).
    normalisation
        Edge-step normalisation around E0; ``None`` for none.
    grid
        Target grid (absolute, or relative to E0); ``None`` keeps the
        working energies.
    method
        ``linear`` or ``cubic`` interpolation onto the grid when there is no
        broadening (broadened spectra are evaluated at the grid energies
        exactly).
    step
        Spacing (eV) of the uniform working grid a broadened spectrum is
        evaluated on to find E0 and fit the normalisation.
    mean_intensity
        Last, scale the spectrum on the grid so that its mean intensity there
        is this value (the area over the grid divided by its width): the
        shape without the overall scale. ``None`` keeps the scale. Needs a
        grid.
    """

    section = "spectra"

    broadening: BroadeningSettings | None = None
    shift: float = 0.0
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    normalisation: NormalisationSettings | None = None
    grid: EnergyGrid | None = None
    method: str = "linear"
    step: float = 0.2
    mean_intensity: float | None = None

    def __post_init__(self) -> None:
        s = self.section
        choice(s, "method", self.method, RESAMPLE_METHODS)
        set_fields(self, shift=number(s, "shift", self.shift), step=number(s, "step", self.step, positive=True),
                   mean_intensity=number(s, "mean_intensity", self.mean_intensity, positive=True, optional=True),
                   broadening=broadening_from_json(self.broadening),
                   edge=EdgeSettings.from_dict(self.edge) if self.edge is not None else EdgeSettings(),
                   normalisation=None if self.normalisation is None else NormalisationSettings.from_dict(self.normalisation),
                   grid=grid_from_json(self.grid))

    @classmethod
    def _from_json(cls, name: str, value: Any, source: str | os.PathLike | None) -> Any:
        if name == "broadening":
            return broadening_from_json(value, source)
        if name == "grid":
            return grid_from_json(value, source)
        if name == "edge":
            return None if value is None else EdgeSettings.from_dict(value, source=source)
        if name == "normalisation":
            return None if value is None else NormalisationSettings.from_dict(value, source=source)
        return value


def process(spectrum: Spectrum, settings: ProcessSettings | Mapping[str, Any] | None = None) -> Spectrum:
    """Apply the configured steps and return the spectrum on the target grid with ``e0`` set.

    Steps: broaden (on a uniform working grid of ``step`` eV spanning the
    input), shift, find E0, fit the normalisation, then take the values at
    the grid energies (checking the input covers them) and normalise them.
    On a relative grid the result's energies are offsets from E0
    (``meta["energy_reference"] == "e0"``); use :func:`to_absolute` to place
    them.
    """
    settings = ProcessSettings.from_dict(settings or {})
    if settings.mean_intensity is not None and settings.grid is None:
        raise XanesnetError("spectra: mean_intensity needs a grid (the mean is taken over it)")
    raw = validated(spectrum)
    grid, shift = settings.grid, settings.shift
    fixed = grid is not None and not grid.relative  # target energies known before E0
    if fixed:
        target = target_energies(_shifted(raw, shift), grid, None)
    work = raw
    if settings.broadening is not None:
        working = _working_grid(raw, settings.step, None if not fixed else target - shift)
        work = broaden(raw, settings.broadening, energy=working)
    work = _shifted(work, shift)
    e0 = edge_energy(_around(work, target) if fixed else work, settings.edge)
    logger.debug("%s: E0 = %.3f eV", raw.name, e0)
    step_fit = None if settings.normalisation is None else fit_edge_step(work, e0=e0, settings=settings.normalisation)
    if grid is None:
        energy, values = work.energy, work.intensity
        out = dataclasses.replace(work, e0=e0)
    else:
        energy = target if fixed else target_energies(work, grid, e0)
        if settings.broadening is not None and not fixed:
            values = broaden(raw, settings.broadening, energy=energy - shift).intensity
        elif settings.broadening is not None:
            values = np.interp(energy, work.energy, work.intensity)  # grid points are among the evaluated ones
        else:
            values = interpolate(work.energy, work.intensity, energy, method=settings.method)
        out = on_grid(work, grid, values, e0=e0)
    if step_fit is not None:
        out = dataclasses.replace(out, intensity=step_fit.apply(energy, values),
                                  meta={**out.meta, "edge_step": step_fit.step})
    if settings.mean_intensity is not None:
        out = _scaled_to_mean(out, settings.mean_intensity)
    return out


def _scaled_to_mean(spectrum: Spectrum, target: float) -> Spectrum:
    """``spectrum`` times the factor that makes its mean intensity ``target``; the factor is kept in ``meta["scale"]``."""
    mean = float(np.mean(spectrum.intensity))
    if not mean > 0:
        raise XanesnetError(f"cannot scale to a mean intensity: the mean on the grid is {mean:.3g}", path=spectrum.source)
    factor = target / mean
    return dataclasses.replace(spectrum, intensity=spectrum.intensity * factor, meta={**spectrum.meta, "scale": factor})


def _working_grid(raw: Spectrum, step: float, target: np.ndarray | None) -> np.ndarray:
    """Uniform energies (``step`` eV) a spectrum is broadened on, plus the target energies when they are known.

    Sized from the target grid when there is one (its span plus :data:`WORKING_MARGIN` on each side, within
    the input), from the input otherwise; refused beyond :data:`MAX_WORKING_POINTS` or
    :data:`MAX_KERNEL_ELEMENTS`, before anything is allocated.
    """
    lo, hi = float(raw.energy[0]), float(raw.energy[-1])
    if target is not None:
        lo, hi = max(lo, float(target[0]) - WORKING_MARGIN), min(hi, float(target[-1]) + WORKING_MARGIN)
    n = int(np.floor((hi - lo) / step)) + 1 if hi > lo else 1
    where = raw.source or raw.name
    if n > MAX_WORKING_POINTS:
        raise XanesnetError(f"spans {lo:g}-{hi:g} eV: broadening it on a {step:g} eV working grid needs {n:,} points "
                            f"(limit {MAX_WORKING_POINTS:,}); cut the file to the edge region or give an absolute --grid",
                            path=where)
    if float(n) * len(raw.energy) > MAX_KERNEL_ELEMENTS:
        raise XanesnetError(f"{len(raw.energy):,} points broadened at {n:,} energies is too much work "
                            f"(limit {MAX_KERNEL_ELEMENTS:.0e} pairs); resample the file more coarsely", path=where)
    working = np.union1d(lo + step * np.arange(n), [hi])
    return working if target is None else np.union1d(working, target)


def _around(spectrum: Spectrum, target: np.ndarray) -> Spectrum:
    """The spectrum's points within :data:`WORKING_MARGIN` of the target energies (and one beyond each end)."""
    e = spectrum.energy
    lo = max(0, int(np.searchsorted(e, target[0] - WORKING_MARGIN)) - 1)
    hi = min(len(e), int(np.searchsorted(e, target[-1] + WORKING_MARGIN, side="right")) + 1)
    if lo == 0 and hi == len(e):
        return spectrum
    return dataclasses.replace(spectrum, energy=e[lo:hi], intensity=spectrum.intensity[lo:hi])


def _shifted(spectrum: Spectrum, shift: float) -> Spectrum:
    if not shift:
        return spectrum
    meta = dict(spectrum.meta)
    for key in ("e_edge", "e_fermi"):
        if key in meta:
            meta[key] = meta[key] + shift
    meta["shift"] = meta.get("shift", 0.0) + shift
    return dataclasses.replace(spectrum, energy=spectrum.energy + shift, meta=meta)


@dataclass(frozen=True)
class Processor:
    """:func:`process` with fixed settings, as a callable ``Spectrum -> Spectrum``."""

    settings: ProcessSettings

    def __call__(self, spectrum: Spectrum) -> Spectrum:
        return process(spectrum, self.settings)

    def to_dict(self) -> dict[str, Any]:
        return self.settings.to_dict()


def processor_from_dict(data: Mapping[str, Any] | ProcessSettings, *,
                        source: str | os.PathLike | None = None) -> Processor:
    """A :class:`Processor` from the JSON form of :class:`ProcessSettings` (e.g. a config's ``spectra`` section)."""
    return Processor(ProcessSettings.from_dict(data, source=source))
