"""Accuracy of predicted spectra against references on the same energy grid (eV)."""

from __future__ import annotations

import numpy as np


def main_peak(energy: np.ndarray, intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (eV) and height of the highest peak of each spectrum, refined by a parabola.

    A peak is an interior local maximum: a spectrum still rising (or falling)
    at an end of its grid has no peak there, whatever its height, because the
    true maximum may lie beyond the grid. The parabola goes through the
    maximum and its two neighbours. A spectrum with no interior maximum gives
    NaN for both. ``intensity`` is (n, points).
    """
    y = np.atleast_2d(np.asarray(intensity, float))
    n = y.shape[1]
    rows = np.arange(len(y))
    if n < 3:
        return np.full(len(y), np.nan), np.full(len(y), np.nan)
    is_peak = np.zeros_like(y, dtype=bool)
    is_peak[:, 1:-1] = (y[:, 1:-1] >= y[:, :-2]) & (y[:, 1:-1] > y[:, 2:])
    has_peak = is_peak.any(axis=1)
    k = np.argmax(np.where(is_peak, y, -np.inf), axis=1)
    kc = np.clip(k, 1, n - 2)
    y0, y1, y2 = y[rows, kc - 1], y[rows, kc], y[rows, kc + 1]
    e0, e1, e2 = energy[kc - 1], energy[kc], energy[kc + 1]
    # vertex of the parabola through three (possibly unevenly spaced) points
    d1, d2 = (y1 - y0) / (e1 - e0), (y2 - y1) / (e2 - e1)
    curv = (d2 - d1) / (e2 - e0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_peak = 0.5 * (e0 + e1) - d1 / (2 * curv)
        ok = (curv < 0) & np.isfinite(e_peak)
    e_peak = np.where(ok, np.clip(e_peak, e0, e2), energy[kc])
    b = d1 - curv * (e0 + e1)
    a = y0 - d1 * e0 + curv * e0 * e1
    y_peak = np.where(ok, curv * e_peak**2 + b * e_peak + a, y1)
    return np.where(has_peak, e_peak, np.nan), np.where(has_peak, y_peak, np.nan)


def evaluate_spectra(energy: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RSE and main-peak errors, averaged over spectra.

    RSE per spectrum is ``sqrt(sum (y_pred - y_true)^2 dE) / sum(y_true dE)``
    with ``dE`` the grid step; peak errors are ``|E_pred - E_true|`` (eV) and
    ``|I_pred - I_true| / I_true`` (%), over the spectra where both have a
    peak (:func:`main_peak`; ``n_peaks`` of them).
    """
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    de = np.gradient(energy)
    rse = np.sqrt(((y_pred - y_true) ** 2 * de).sum(1)) / (y_true * de).sum(1)
    e_t, i_t = main_peak(energy, y_true)
    e_p, i_p = main_peak(energy, y_pred)
    both = np.isfinite(e_t) & np.isfinite(e_p)
    pos = np.abs(e_p - e_t)[both] if both.any() else np.full(1, np.nan)
    inten = (100 * np.abs(i_p - i_t) / np.abs(i_t))[both] if both.any() else np.full(1, np.nan)
    return {
        "mse": float(np.mean((y_pred - y_true) ** 2)),
        "rse": float(np.mean(rse)),
        "peak_position_error_ev_mean": float(pos.mean()),
        "peak_position_error_ev_median": float(np.median(pos)),
        "peak_intensity_error_pct_mean": float(inten.mean()),
        "peak_intensity_error_pct_median": float(np.median(inten)),
        "n": int(len(y_true)),
        "n_peaks": int(both.sum()),
    }


def edge_energy(energy: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Energy of the steepest rise (maximum of the first derivative) of each spectrum."""
    y = np.atleast_2d(intensity)
    return energy[np.argmax(np.gradient(y, energy, axis=1), axis=1)]
