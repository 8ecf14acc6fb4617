"""Lorentzian broadening, fixed or with FDMNES's energy-dependent arctangent width.

The arctangent width (FDMNES ``Gamma_hole``, ``Gamma_max``, ``Ecent``,
``Elarg``, ``Efermi``; Seah-Dench-like) is, for photon energy E above the
Fermi level ``ef``::

    e = (E - ef) / ec
    width(E) = width + width_max * (1/2 + 1/pi * arctan(pi/3 * width_max/el * (e - 1/e**2)))

and ``width`` at and below ``ef``. All widths are full widths at half
maximum (eV).

How the integral is done
------------------------
The input is taken as piecewise linear between its points (any spacing, so
FEFF's irregular grids need no resampling) and each piece is convolved with
a unit-area Lorentzian analytically, so the result is exact for that
interpolant and can be evaluated at any energies. Each piece spreads with
the width at its own centre (the width belongs to the final state), which
keeps the total area exactly. Intensity at points below ``ef`` is set to
zero first, point by point: the interpolant ramps from zero at the last
point below ``ef`` to the first point at or above it.

Ends: beyond its first and last points the spectrum is continued with its
end values for ``extend`` eV and taken as zero further out (after the Fermi
cut the low end is already zero); these continuations take the width of the
end intervals. With ``extend = 0`` a broadened spectrum
sags towards its ends, since half the kernel then sees nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum, validated
from xanesnet.settings import Settings, choice, number, set_fields

BROADENING_KINDS = ("lorentzian", "arctangent")
#: Where ``ef`` is measured from: absolute eV, ``meta["e_edge"]`` (FDMNES's
#: tabulated edge) or ``meta["e_fermi"]`` (the code's own Fermi level).
EF_REFERENCES = ("absolute", "edge", "fermi")
#: Kernel elements (output energies x input intervals) built at a time; bounds memory for long spectra.
_BLOCK_ELEMENTS = 2_000_000
#: eV: the largest width, rise or extension a broadening may have.
MAX_WIDTH = 1e4


@dataclass(frozen=True)
class BroadeningSettings(Settings):
    """Parameters of :func:`broaden`.

    Parameters
    ----------
    kind
        ``lorentzian`` (fixed ``width``) or ``arctangent`` (FDMNES's
        energy-dependent width; needs ``ef``).
    width
        Lorentzian FWHM (eV); the core-hole width for ``arctangent``
        (FDMNES ``Gamma_hole``).
    width_max
        Added width far above the edge (eV; FDMNES ``Gamma_max``).
    ec
        Centre of the width's rise above ``ef`` (eV; FDMNES ``Ecent``).
    el
        Energy scale of the rise (eV; FDMNES ``Elarg``): larger is gentler.
    ef
        Fermi level (eV, measured from ``ef_reference``): intensity below it
        is set to zero and the arctangent width starts from it. ``None``: no
        cut (then ``kind`` must be ``lorentzian``).
    ef_reference
        ``absolute``, ``edge`` (``ef`` relative to the file's ``E_edge``) or
        ``fermi`` (relative to the code's own Fermi level in the file).
    extend
        How far (eV) the end values are continued beyond each end.
    scale
        Factor applied to the result (1 keeps the area).
    """

    section = "broadening"

    kind: str = "lorentzian"
    width: float = 1.0
    width_max: float = 15.0
    ec: float = 30.0
    el: float = 30.0
    ef: float | None = None
    ef_reference: str = "absolute"
    extend: float = 100.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        s = self.section
        choice(s, "kind", self.kind, BROADENING_KINDS)
        choice(s, "ef_reference", self.ef_reference, EF_REFERENCES)
        big = MAX_WIDTH
        set_fields(self, width=number(s, "width", self.width, positive=True, maximum=big),
                   width_max=number(s, "width_max", self.width_max, nonnegative=True, maximum=big),
                   ec=number(s, "ec", self.ec, positive=True, maximum=big), el=number(s, "el", self.el, positive=True, maximum=big),
                   ef=number(s, "ef", self.ef, optional=True, maximum=1e6),
                   extend=number(s, "extend", self.extend, nonnegative=True, maximum=big),
                   scale=number(s, "scale", self.scale, maximum=1e9))
        if self.kind == "arctangent" and self.ef is None:
            raise XanesnetError("broadening: arctangent broadening needs ef (the Fermi level its width starts from)")


#: Named broadenings. ``fdmnes`` reproduces the convolved spectra of the Fe
#: K-edge FDMNES data set (``xanes_conv/``) from its raw ones (``xanes_raw/``):
#: see ``docs/broadening.md`` and ``scripts/fit_broadening.py``. Its scale is
#: pi / (0.2 eV), the data set's own factor for raw spectra on a 0.2 eV grid.
BROADENING_PRESETS: dict[str, BroadeningSettings] = {
    "fdmnes": BroadeningSettings(kind="lorentzian", width=1.25, ef=-1.1, ef_reference="edge", extend=93.0,
                                 scale=5 * math.pi),
}


def broadening_from_json(value: Any, source: str | os.PathLike | None = None) -> BroadeningSettings | None:
    """Broadening settings from a preset name, a JSON dict, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "arctangent":  # the kind alone: default widths, rising from the file's own Fermi level
            return BroadeningSettings(kind=value, ef=0.0, ef_reference="fermi")
        if value in BROADENING_KINDS:
            return BroadeningSettings(kind=value)
        if value not in BROADENING_PRESETS:
            raise XanesnetError(f"unknown broadening {value!r}; known: {', '.join([*BROADENING_PRESETS, *BROADENING_KINDS])}", path=source)
        return BROADENING_PRESETS[value]
    return BroadeningSettings.from_dict(value, source=source)


def arctangent_width(energy: np.ndarray, *, width: float, width_max: float, ec: float, el: float,
                     ef: float) -> np.ndarray:
    """FDMNES's energy-dependent Lorentzian FWHM (eV) at absolute energies ``energy`` (eV)."""
    energy = np.asarray(energy, dtype=np.float64)
    e = (energy - ef) / ec
    out = np.full(energy.shape, float(width))
    above = e > 0
    ea = e[above]
    with np.errstate(over="ignore"):
        out[above] = width + width_max * (0.5 + np.arctan(np.pi / 3 * width_max / el * (ea - 1 / ea**2)) / np.pi)
    return out


def lorentzian_convolve(energy: np.ndarray, intensity: np.ndarray, fwhm: float | np.ndarray, *,
                        at: np.ndarray | None = None, extend: float = 0.0) -> np.ndarray:
    """Piecewise-linear ``intensity(energy)`` convolved with a unit-area Lorentzian, at energies ``at``.

    Parameters
    ----------
    energy
        Input energies (eV; strictly increasing, any spacing).
    intensity
        Input intensities: one spectrum, or several as rows of a 2-D array
        (all on ``energy``).
    fwhm
        Full width at half maximum (eV): one number, or one per input
        interval (``len(energy) - 1`` values) for a width that varies.
    at
        Output energies (eV); default the input energies.
    extend
        Continue the end values this far (eV) beyond each end.
    """
    x = np.asarray(energy, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    out_e = x if at is None else np.asarray(at, dtype=np.float64)
    half = np.broadcast_to(np.asarray(fwhm, dtype=np.float64) / 2, (len(x) - 1,))
    if extend > 0:
        k = max(1, math.ceil(extend / 2.0))
        lo = np.linspace(x[0] - extend, x[0], k + 1)[:-1]
        hi = np.linspace(x[-1], x[-1] + extend, k + 1)[1:]
        x = np.concatenate([lo, x, hi])
        y = np.concatenate([np.repeat(y[..., :1], k, axis=-1), y, np.repeat(y[..., -1:], k, axis=-1)], axis=-1)
        half = np.concatenate([np.full(k, half[0]), half, np.full(k, half[-1])])
    x0, x1 = x[:-1], x[1:]
    h = x1 - x0
    g = half[None, :]
    result = np.empty(y.shape[:-1] + (len(out_e),))
    rows = max(1, _BLOCK_ELEMENTS // max(1, len(x0)))
    for b in range(0, len(out_e), rows):
        e = out_e[b:b + rows, None]
        t0, t1 = x0[None, :] - e, x1[None, :] - e
        # Unit-area Lorentzian integrated over each piece, of 1 and of (E' - E) ...
        i0 = (np.arctan(t1 / g) - np.arctan(t0 / g)) / np.pi
        i1 = g / (2 * np.pi) * np.log((t1**2 + g**2) / (t0**2 + g**2))
        # ... give the weights of each piece's two end points.
        w_left = (t1 * i0 - i1) / h
        w_right = (i1 - t0 * i0) / h
        result[..., b:b + rows] = y[..., :-1] @ w_left.T + y[..., 1:] @ w_right.T
    return result


def fermi_level(spectrum: Spectrum, settings: BroadeningSettings) -> float | None:
    """The absolute Fermi level (eV) the settings ask for, from the file's metadata where needed."""
    if settings.ef is None:
        return None
    if settings.ef_reference == "absolute":
        return settings.ef
    key = "e_edge" if settings.ef_reference == "edge" else "e_fermi"
    ref = spectrum.meta.get(key)
    if ref is None and key == "e_fermi":
        ref = _fermi_from_table(spectrum.meta)
    if ref is None:
        what = "the edge energy E_edge (FDMNES raw output has it)" if key == "e_edge" else \
            "the code's Fermi level (FDMNES raw output and FEFF xmu.dat have it)"
        raise XanesnetError(f"broadening measures ef from {what}, but the file does not give it; use ef_reference "
                            "'absolute'", path=spectrum.source or spectrum.name)
    return float(ref) + settings.ef


def _fermi_from_table(meta: Mapping[str, Any]) -> float | None:
    cols = [str(c).lower() for c in meta.get("columns", ())]
    table = meta.get("table")
    if table is None or "omega" not in cols or "e" not in cols:
        return None
    table = np.asarray(table)
    return float(np.median(table[:, cols.index("omega")] - table[:, cols.index("e")]))


def widths(energy: np.ndarray, settings: BroadeningSettings, ef: float | None) -> np.ndarray:
    """Lorentzian FWHM (eV) at absolute energies ``energy`` for these settings and Fermi level."""
    if settings.kind == "lorentzian":
        return np.full(np.shape(energy), settings.width)
    return arctangent_width(energy, width=settings.width, width_max=settings.width_max, ec=settings.ec,
                            el=settings.el, ef=ef)


def broaden(spectrum: Spectrum, settings: BroadeningSettings | str, *, energy: np.ndarray | None = None) -> Spectrum:
    """The spectrum broadened as ``settings`` (or a preset name) say, at ``energy`` (default its own, eV)."""
    settings = broadening_from_json(settings)
    spectrum = validated(spectrum)
    x, y = spectrum.energy, spectrum.intensity
    ef = fermi_level(spectrum, settings)
    if ef is not None:
        y = np.where(x < ef, 0.0, y)
    mid = 0.5 * (x[1:] + x[:-1])
    values = settings.scale * lorentzian_convolve(x, y, widths(mid, settings, ef), at=energy, extend=settings.extend)
    out_e = x if energy is None else np.asarray(energy, dtype=np.float64)
    return dataclasses.replace(spectrum, energy=out_e, intensity=values,
                               meta={**spectrum.meta, "broadening": settings.to_dict()})
