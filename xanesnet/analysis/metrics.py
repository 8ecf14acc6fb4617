"""Accuracy of predicted spectra against references on the same energy grid (eV)."""

from __future__ import annotations

import numpy as np

from xanesnet.spectra.edge import main_peak  # noqa: F401  (the main peak is a property of a spectrum)


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


def zscored_skill(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per spectrum, the skill of ``y_pred`` against predicting the mean of the *other* references, every spectrum z-scored.

    Every spectrum (row), predicted, reference or baseline, is z-scored over
    its grid (mean 0, std 1), so neither an offset nor a scale, i.e. no
    normalisation, can matter. Spectrum i's skill is
    ``1 - MSE(z(pred_i), z(true_i)) / MSE(z(m_i), z(true_i))`` with ``m_i``
    the mean reference of all others: 1 is perfect, 0 is no better than
    knowing only what the other molecules look like. Needs at least two
    references; a flat spectrum (std 0) is an error.
    """
    y_true, y_pred = np.atleast_2d(y_true).astype(float), np.atleast_2d(y_pred).astype(float)
    if y_true.shape != y_pred.shape or len(y_true) < 2:
        raise ValueError(f"need two or more pairs of spectra of one shape, got {y_true.shape} and {y_pred.shape}")

    def z(a: np.ndarray) -> np.ndarray:
        std = a.std(1, keepdims=True)
        if np.any(std == 0):
            raise ValueError("a flat spectrum has no z-score")
        return (a - a.mean(1, keepdims=True)) / std

    zt, zp = z(y_true), z(y_pred)
    others = z((y_true.sum(0) - y_true) / (len(y_true) - 1))
    return 1.0 - ((zp - zt) ** 2).mean(1) / ((others - zt) ** 2).mean(1)


def edge_energy(energy: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Energy of the steepest rise (maximum of the first derivative) of each spectrum."""
    y = np.atleast_2d(intensity)
    return energy[np.argmax(np.gradient(y, energy, axis=1), axis=1)]


def score_predictions(pred, y_true: np.ndarray) -> dict[str, Any]:
    """Accuracy metrics, plus coverage and sigma-error correlation when the prediction has an error bar."""
    from xanesnet.uncertainty import uncertainty_metrics

    metrics = evaluate_spectra(pred.energy, y_true, pred.mean)
    if pred.score is not None:
        metrics.update(uncertainty_metrics(y_true, pred.mean, pred.std))
    if pred.trusted is not None:
        metrics["trusted_fraction"] = float(np.mean(pred.trusted))
    return metrics
