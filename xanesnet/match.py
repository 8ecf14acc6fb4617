"""Rank candidate structures against a measured spectrum (``xanesnet match``).

Every candidate's spectrum P (with its calibrated std sigma) is predicted by
the forward model. A measurement M and a calculation never share an absolute
energy scale or an intensity scale, so per candidate an energy shift ``d``
(within ``+-window`` eV) and an intensity scale ``s`` are fitted, with the
model ``M(E + d) = s * (P(E) + e)``, ``e ~ N(0, sigma^2 + tau^2)`` at each
energy point E of the comparison range. ``tau`` is the model-mismatch floor:
:data:`MISMATCH_FLOOR` times the mean predicted intensity, for what the
ensemble's spread does not know (the theory's own errors, broadening,
experimental noise). For each shift on a 0.05 eV grid the scale has a closed
form (maximum likelihood); the shift with the highest likelihood is refined
by a parabola. The comparison range is the same for every candidate and
shift: the model's grid where ``E + d`` stays inside the measurement for
every ``d`` in the window.

``score`` is the log-likelihood per point, averaged over the comparison
range. Neighbouring points of a spectrum are far from independent, so the
probability-like ``weight`` over candidates is ``softmax(n_eff * score)``
with ``n_eff`` = the comparison range in eV / :data:`CORRELATION_EV`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum

#: Model-mismatch floor tau, as a fraction of the mean predicted intensity.
MISMATCH_FLOOR = 0.02
#: Energy span (eV) counted as one independent point when turning scores into weights.
CORRELATION_EV = 5.0
#: Default half-width (eV) of the energy-shift search.
SHIFT_WINDOW = 5.0
_SHIFT_STEP = 0.05


@dataclass
class Ranking:
    """Candidates ranked best first: per candidate the fitted shift (eV) and scale, score, RMSE, weight and trust."""

    names: list[str]
    score: np.ndarray
    shift_ev: np.ndarray
    scale: np.ndarray
    rmse: np.ndarray
    weight: np.ndarray
    trusted: np.ndarray | None
    order: np.ndarray  # indices into the candidates as given, best first

    def table(self) -> str:
        """Tab-separated, one row per candidate, best first."""
        rows = ["rank\tname\tscore\tshift_ev\tscale\trmse\ttrusted\tweight"]
        for rank, k in enumerate(self.order, 1):
            trusted = "" if self.trusted is None else str(bool(self.trusted[k])).lower()
            rows.append(f"{rank}\t{self.names[k]}\t{self.score[k]:.5g}\t{self.shift_ev[k]:.2f}\t{self.scale[k]:.5g}\t"
                        f"{self.rmse[k]:.5g}\t{trusted}\t{self.weight[k]:.4g}")
        return "\n".join(rows) + "\n"


def comparison_range(measured: Spectrum, energy: np.ndarray, window: float) -> np.ndarray:
    """Mask of the model grid ``energy`` usable for every shift in ``+-window``; refuses too short a measurement.

    The measurement must cover the model's range to within the window at
    each end (``e_min + window`` to ``e_max - window``).
    """
    lo, hi = measured.energy[0] + window, measured.energy[-1] - window
    if measured.energy[0] > energy[0] + window + 1e-6 or measured.energy[-1] < energy[-1] - window - 1e-6:
        raise XanesnetError(f"the spectrum ({measured.energy[0]:g}-{measured.energy[-1]:g} eV) does not cover the model's "
                            f"range {energy[0]:g}-{energy[-1]:g} eV (to within the +-{window:g} eV shift window)",
                            path=measured.source or measured.name)
    return (energy >= lo - 1e-9) & (energy <= hi + 1e-9)


def rank_candidates(measured: Spectrum, energy: np.ndarray, mean: np.ndarray, std: np.ndarray, names: list[str], *,
                    trusted: np.ndarray | None = None, window: float = SHIFT_WINDOW,
                    floor: float = MISMATCH_FLOOR, correlation_ev: float = CORRELATION_EV) -> Ranking:
    """Fit shift and scale per candidate and rank by likelihood (see the module docstring).

    ``energy`` (eV, absolute) is the model grid, ``mean`` and ``std`` the
    candidates' predicted spectra and calibrated std (n, points).
    """
    if len(names) == 0:
        raise XanesnetError("no candidates to rank")
    if window < 0:
        raise XanesnetError(f"the shift window must not be negative, got {window}")
    use = comparison_range(measured, energy, window)
    e = energy[use]
    p, sig = np.asarray(mean, float)[:, use], np.asarray(std, float)[:, use]
    tau = floor * float(np.mean(np.abs(p)))
    var = sig**2 + tau**2  # (n, m)
    n_steps = int(round(window / _SHIFT_STEP))
    shifts = _SHIFT_STEP * np.arange(-n_steps, n_steps + 1)
    m = np.interp(e[None, :] + shifts[:, None], measured.energy, measured.intensity)  # (shifts, m)
    loglik, scale = _loglik(m[:, None, :], p[None], var[None])  # (shifts, n)
    best = loglik.argmax(0)
    shift = shifts[best].astype(float)
    inner = (best > 0) & (best < len(shifts) - 1)
    cols = np.arange(len(names))
    if np.any(inner):  # parabola through the best shift and its neighbours
        k = best[inner]
        c = cols[inner]
        y0, y1, y2 = loglik[k - 1, c], loglik[k, c], loglik[k + 1, c]
        denom = y0 - 2 * y1 + y2
        offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
        shift[inner] += np.clip(offset, -0.5, 0.5) * _SHIFT_STEP
    m_best = np.array([np.interp(e + d, measured.energy, measured.intensity) for d in shift])
    ll, s = _loglik(m_best, p, var)
    score = ll / len(e)
    rmse = np.sqrt(np.mean((m_best - s[:, None] * p) ** 2, axis=1))
    n_eff = (e[-1] - e[0]) / correlation_ev if len(e) > 1 else 1.0
    z = n_eff * (score - score.max())
    weight = np.exp(z) / np.exp(z).sum()
    order = np.lexsort((np.arange(len(names)), -score))
    return Ranking(names=list(names), score=score, shift_ev=shift, scale=s, rmse=rmse, weight=weight,
                   trusted=None if trusted is None else np.asarray(trusted, bool), order=order)


def _loglik(m: np.ndarray, p: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian log-likelihood of ``m = s * (p + e)``, ``e ~ N(0, var)``, summed over the last axis, at the best ``s``.

    With ``u = 1/s`` the condition is ``A u^2 - B u - n = 0``, ``A = sum m^2/var``, ``B = sum m p/var``.
    """
    n = m.shape[-1]
    a = np.sum(m * m / var, axis=-1)
    b = np.sum(m * p / var, axis=-1)
    u = (b + np.sqrt(b * b + 4 * a * n)) / (2 * np.maximum(a, 1e-300))
    s = 1.0 / u
    r = m * u[..., None] - p
    ll = -0.5 * np.sum(r * r / var + np.log(2 * np.pi * var), axis=-1) - n * np.log(np.abs(s))
    return ll, s
