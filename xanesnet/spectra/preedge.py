"""E0, edge step and normalisation as Larch defines them (``larch.xafs.find_e0`` and ``pre_edge``).

Spectroscopists read E0 and normalised spectra from Larch and Athena, so every
E0, edge step and normalised spectrum xanesnet reports follows Larch's
definitions, ported here line by line (xraylarch itself takes seconds to
import and pulls in ~57 packages, so it is an optional extra; the tests
compare this port with it where it is installed):

- :func:`find_e0`: the largest first derivative of mu(E), found once without
  smoothing, then again with a Lorentzian smoothing of width ~0.3 eV in a
  window of 75 points either side, among points whose neighbours also have a
  high derivative (so single-point glitches do not win);
- :func:`pre_edge`: a line fitted over ``[e0 + pre1, e0 + pre2]``, a
  polynomial of degree ``nnorm`` over ``[e0 + norm1, e0 + norm2]`` fitted to
  mu minus that line; the edge step is their difference at E0 and the
  normalised spectrum ``(mu - pre_edge) / edge_step``. The default windows
  are Larch's (``pre1`` the second point rounded to 5 eV, ``pre2 = pre1/2``,
  ``norm2`` the last point, ``norm1 = min(25, norm2/15)`` rounded to 5 eV,
  ``nnorm`` 0, 1 or 2 by the post-edge length).

Energies in eV. This E0 is what is reported; model energy grids "relative to
the edge" keep :func:`xanesnet.spectra.edge.edge_energy`, saved with each model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanesnet.errors import XanesnetError

#: Larch's smallest tolerated energy step (eV).
TINY_ENERGY = 0.0005
MAX_NNORM = 5


def _index_of(array: np.ndarray, value: float) -> int:
    """Index of the last point at or below ``value`` (0 below the range), as ``larch.math.index_of``."""
    if value < array.min():
        return 0
    return int(np.flatnonzero(array <= value).max())


def _index_nearest(array: np.ndarray, value: float) -> int:
    return int(np.abs(array - value).argmin())


def _polyfit(x: np.ndarray, y: np.ndarray, deg: int) -> list[float]:
    """Coefficients lowest power first, as ``larch.math.polyfit``."""
    return list(np.polynomial.Polynomial.fit(x, y, deg=int(deg)).convert().coef)


def _energy_step(energy: np.ndarray, frac_ignore: float = 0.01, nave: int = 10) -> float:
    """``larch.xafs.find_energy_step``: the typical step, ignoring the smallest ``frac_ignore`` of them."""
    nskip = int(frac_ignore * len(energy))
    e = energy[:-1]  # larch's "in order" selection drops the last point
    ediff = np.diff(e[nskip:-nskip] if nskip else e[0:0])
    with np.errstate(invalid="ignore"):
        return float(np.sort(ediff)[nskip:nskip + nave].mean()) if len(ediff) else float("nan")


def _smooth(x: np.ndarray, y: np.ndarray, sigma: float, xstep: float, npad: int = 5) -> np.ndarray:
    """``larch.math.smooth`` with its default Lorentzian: resample on ``xstep``, mirror-pad, convolve, interpolate back."""
    xmin = xstep * int((x.min() - npad * xstep) / xstep)
    xmax = xstep * int((x.max() + npad * xstep) / xstep)
    npts = min(1 + int(abs(xmax - xmin + xstep * 0.1) / xstep), 50 * len(x))
    x0 = np.linspace(xmin, xmax, npts)
    y0 = np.interp(x0, x, y)
    sigma = sigma / xstep
    wx = np.arange(2 * npts)
    win = 1.0 / (1 + ((wx - npts) / sigma) ** 2)
    y1 = np.concatenate((y0[npts:0:-1], y0, y0[-1:-npts - 1:-1]))
    y2 = np.convolve(win / win.sum(), y1, mode="valid")
    if len(y2) > len(x0):
        nex = int((len(y2) - len(x0)) / 2)
        y2 = (y2[nex:])[:len(x0)]
    return np.interp(x, x0, y2)


def _finde0(energy: np.ndarray, mu: np.ndarray, estep: float | None = None, use_smooth: bool = True
            ) -> tuple[float, int, float]:
    en, mu = energy[:-1], mu[:-1]  # as larch's "in order" selection
    if estep is None:
        estep = _energy_step(en)
    nmin = max(3, int(len(en) * 0.02))
    deriv = np.gradient(mu) / np.gradient(en)
    dmu = _smooth(en, deriv, sigma=estep, xstep=estep) if use_smooth else deriv
    dmu = np.where(np.isfinite(dmu), dmu, -1.0)
    inner = dmu[nmin:-nmin]
    dmu = (dmu - inner.min()) / max(1e-10, float(np.ptp(inner)))
    dhigh = 0.60 if len(en) > 20 else 0.30
    high = np.flatnonzero(dmu > dhigh)
    if len(high) < 3:
        for _ in range(2):
            if len(high) > 3:
                break
            dhigh *= 0.5
            high = np.flatnonzero(dmu > dhigh)
    if len(high) < 3:
        high = np.flatnonzero(np.isfinite(dmu))
    high_set = set(high.tolist())
    imax, dmax = 0, 0.0
    for i in high.tolist():
        if i < nmin or i > len(en) - nmin:
            continue
        if dmu[i] > dmax and (i + 1) in high_set and (i - 1) in high_set:
            imax, dmax = i, dmu[i]
    return float(en[imax]), imax, estep


def _checked(energy: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    energy, mu = np.asarray(energy, float), np.asarray(mu, float)
    if energy.ndim != 1 or energy.shape != mu.shape or len(energy) < 8:
        raise XanesnetError(f"an edge needs matching 1-D energy and intensity of at least 8 points, got {energy.shape} "
                            f"and {mu.shape}")
    if not (np.all(np.isfinite(energy)) and np.all(np.isfinite(mu)) and np.all(np.diff(energy) > 0)):
        raise XanesnetError("an edge needs finite intensities on strictly increasing energies")
    return energy, mu


def find_e0(energy: np.ndarray, mu: np.ndarray) -> float:
    """E0 (eV) as ``larch.xafs.find_e0``: the largest derivative, refined with smoothing near it."""
    energy, mu = _checked(energy, mu)
    e1, ie0, estep1 = _finde0(energy, mu, estep=None, use_smooth=False)
    istart, istop = max(3, ie0 - 75), min(ie0 + 75, len(energy) - 3)
    if ie0 < 0.05 * len(energy):  # an E0 in the first 5% of points is a glitch
        e1 = float(energy.mean())
        istart, istop = max(3, ie0 - 20), len(energy) - 3
    estep = 0.5 * (max(0.01, min(1.0, estep1)) + max(0.01, min(1.0, e1 / 25000.0)))
    e0, ix, _ = _finde0(energy[istart:istop], mu[istart:istop], estep=estep, use_smooth=True)
    if ix < 1:
        e0 = float(energy[istart + 2])
    return float(e0)


@dataclass(frozen=True)
class PreEdge:
    """What ``larch.xafs.pre_edge`` finds: E0 and windows (eV), the edge step and the curves on the input grid."""

    e0: float
    edge_step: float
    norm: np.ndarray
    pre_edge: np.ndarray
    post_edge: np.ndarray
    pre1: float
    pre2: float
    norm1: float
    norm2: float
    nnorm: int


def pre_edge(energy: np.ndarray, mu: np.ndarray, *, e0: float | None = None, step: float | None = None,
             pre1: float | None = None, pre2: float | None = None, norm1: float | None = None,
             norm2: float | None = None, nnorm: int | None = None) -> PreEdge:
    """Pre-edge subtraction and normalisation as ``larch.xafs.pre_edge`` (``npre=1``, ``nvict=0``).

    ``e0`` outside the spectrum (or ``None``) is found with :func:`find_e0`;
    windows ``pre1..pre2`` and ``norm1..norm2`` are relative to E0 (eV).
    """
    energy, mu = _checked(energy, mu)
    if e0 is None or e0 < energy[1] or e0 > energy[-2]:
        e0 = find_e0(energy, mu)
    ie0 = _index_nearest(energy, e0)
    if pre1 is None:
        pre1 = 5.0 * round((energy[1] - e0) / 5.0) if ie0 > 20 else 2.0 * round((energy[1] - e0) / 2.0)
    pre1 = max(pre1, energy.min() - e0)
    if pre2 is None:
        pre2 = 0.5 * pre1
    if pre1 > pre2:
        pre1, pre2 = pre2, pre1
    npre = 1 if _index_of(energy - e0, pre2) - _index_of(energy - e0, pre1) >= 3 else 0
    if norm2 is None:
        norm2 = 5.0 * round((energy.max() - e0) / 5.0)
    if norm2 < 0:
        norm2 = energy.max() - e0 - norm2
    norm2 = min(norm2, energy.max() - e0)
    if norm1 is None:
        norm1 = min(25, 5.0 * round(norm2 / 15.0))
    if norm1 > norm2:
        norm1, norm2 = norm2, norm1
    norm1 = min(norm1, norm2 - 2)
    if nnorm is None:
        nnorm = 2 if norm2 - norm1 >= 300 else 1 if norm2 - norm1 >= 30 else 0
    nnorm = max(min(nnorm, MAX_NNORM), 0)

    p1, p2 = _index_of(energy, pre1 + e0), _index_nearest(energy, pre2 + e0)
    if npre == 0:
        if p2 == p1:
            p2 += 1
        line = np.full(len(energy), mu[p1:p2].mean())
    else:
        if p2 - p1 < 2:
            p2 = min(len(energy), p1 + 2)
        c = _polyfit(energy[p1:p2], mu[p1:p2], 1)
        c = c + [0.0] * (2 - len(c))
        line = c[0] + energy * c[1]

    p1, p2 = _index_of(energy, norm1 + e0), _index_nearest(energy, norm2 + e0)
    if p1 > len(energy) - 3:
        p1 = len(energy) - 3
    if p2 - p1 < 2:
        p1, nnorm = p1 - 2, 0
    elif p2 - p1 < 5:
        nnorm = min(1, nnorm)
    coefs = _polyfit(energy[p1:p2], (mu - line)[p1:p2], nnorm)
    post = line + sum(c * energy**n for n, c in enumerate(coefs))
    edge_step = step if step is not None else post[ie0] - line[ie0]
    edge_step = max(1e-12, abs(float(edge_step)))
    return PreEdge(e0=float(e0), edge_step=edge_step, norm=(mu - line) / edge_step, pre_edge=line, post_edge=post,
                   pre1=float(pre1), pre2=float(pre2), norm1=float(norm1), norm2=float(norm2), nnorm=int(nnorm))
