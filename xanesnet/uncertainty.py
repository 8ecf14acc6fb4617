"""Uncertainty: MC dropout, calibration of the predicted standard deviation, and the trust flag.

The raw spread of an ensemble (and of Monte-Carlo dropout draws) is not a
calibrated error bar. On the validation split we fit a factor for sigma,
scalar or smooth over energy, so that +-1 sigma and +-2 sigma cover 68% and
95% of the reference points; predict applies it. Each prediction also gets a
scalar uncertainty score (the calibrated sigma relative to the training
spectra's spread, averaged over energy) and ``trusted = score <= threshold``,
the threshold being a high quantile of the validation scores.

The spread of networks says little far outside the training data: there they
can agree on nonsense, or disagree by orders of magnitude. So each
descriptor value is also checked against the range it spanned in training.
A value more than :data:`EXTRAPOLATION_LIMIT` training standard deviations
beyond that range marks the prediction as an extrapolation (not trusted,
whatever the score) and is clipped to that limit before the networks see it,
so the spectrum stays finite and the warning names the feature responsible.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import numpy as np

from xanesnet.errors import XanesnetError

logger = logging.getLogger(__name__)

COVERAGE_TARGETS = {1.0: 0.6827, 2.0: 0.9545}

#: How far (in training standard deviations) a descriptor value may lie beyond the range seen in training
#: before the prediction counts as an extrapolation. On the Fe K-edge validation split no molecule goes
#: beyond 6.2; a bond or contact that no training molecule has gives hundreds to tens of thousands.
EXTRAPOLATION_LIMIT = 10.0
CALIBRATIONS = ("scalar", "energy")

#: Fewer validation spectra than this and the calibration of sigma and the trust threshold is not worth much: a warning.
MIN_CALIBRATION_SPECTRA = 10


@contextlib.contextmanager
def mc_dropout(net) -> Iterator[None]:
    """Within the block only the dropout layers of ``net`` are in training mode (sampling masks)."""
    from torch import nn

    drops = [m for m in net.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not drops:
        raise XanesnetError("MC dropout needs a model trained with dropout > 0")
    net.eval()
    for m in drops:
        m.train()
    try:
        yield
    finally:
        net.eval()


def coverage(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, k: float) -> float:
    """Share of points with ``|y - mean| <= k * std``."""
    return float(np.mean(np.abs(y_true - mean) <= k * std))


def fit_calibration(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, *, kind: str = "scalar",
                    smooth_points: int = 9) -> dict[str, Any]:
    """Scale for sigma so that +-1 and +-2 sigma cover 68.3% and 95.4% of validation points.

    ``kind="scalar"``: one factor for the whole grid, minimising the squared
    coverage errors at 1 and 2 sigma over a log grid of factors.
    ``kind="energy"``: the same per energy point, smoothed with a moving
    average over ``smooth_points`` points.
    """
    if kind not in CALIBRATIONS:
        raise XanesnetError(f"unknown calibration {kind!r}; known: {', '.join(CALIBRATIONS)}")
    if not np.all(std > 0):
        raise XanesnetError("calibration needs a positive predicted sigma: train an ensemble (--ensemble N) or with dropout")
    z = np.abs(y_true - mean) / std  # (n, points)
    factors = np.geomspace(0.05, 50.0, 800)

    def best(zcol: np.ndarray) -> float:
        err = sum((np.mean(zcol[..., None] <= k * factors, axis=tuple(range(zcol.ndim))) - target) ** 2
                  for k, target in COVERAGE_TARGETS.items())
        return float(factors[np.argmin(err)])

    if kind == "scalar":
        scale = np.array([best(z)])
    else:
        raw = np.array([best(z[:, j]) for j in range(z.shape[1])])
        pad = smooth_points // 2
        padded = np.pad(np.log(raw), pad, mode="edge")
        scale = np.exp(np.convolve(padded, np.ones(smooth_points) / smooth_points, mode="valid"))
    cal_std = std * scale
    return {"kind": kind, "scale": scale.tolist(),
            "coverage_1sigma_before": coverage(y_true, mean, std, 1), "coverage_2sigma_before": coverage(y_true, mean, std, 2),
            "coverage_1sigma": coverage(y_true, mean, cal_std, 1), "coverage_2sigma": coverage(y_true, mean, cal_std, 2)}


def apply_calibration(std: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    if not calibration:
        return std
    return std * np.asarray(calibration["scale"], float)


def out_of_range(x: np.ndarray, scaler, limit: float = EXTRAPOLATION_LIMIT
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How far each row of ``x`` goes beyond the scaler's training range, and ``x`` clipped to ``limit``.

    Returns ``(distance, feature, clipped)``: per row, the largest distance
    beyond the range in training standard deviations (0 inside) and the
    index of the feature that has it; ``clipped`` holds ``x`` with every value
    moved to at most ``limit`` standard deviations outside the range. A
    feature that was constant in training has no scale: any other value is
    infinitely far (the network never learned a weight for it) and is set
    back to the training value.
    """
    lo, hi, std = scaler.min_, scaler.max_, scaler.std_
    constant = hi <= lo
    beyond = np.maximum(np.maximum(x - hi, lo - x), 0.0) / std
    beyond[:, constant] = np.where(beyond[:, constant] > 0, np.inf, 0.0)
    feature = beyond.argmax(axis=1) if beyond.size else np.zeros(len(x), int)
    distance = beyond[np.arange(len(x)), feature] if beyond.size else np.zeros(len(x))
    margin = np.where(constant, 0.0, limit * std)
    return distance, feature, np.clip(x, lo - margin, hi + margin)


def labelling_order(score: np.ndarray, extrapolation: np.ndarray | None = None) -> np.ndarray:
    """Indices from the most to the least informative molecule to compute a reference spectrum for.

    Molecules beyond the training range (:data:`EXTRAPOLATION_LIMIT`) come
    first, furthest out first: the model has never seen their geometry and
    its spread there means little. The rest follow by uncertainty score,
    highest first. Ties keep the input order.
    """
    score = np.asarray(score, float)
    beyond = np.zeros_like(score) if extrapolation is None else np.asarray(extrapolation, float)
    outside = beyond > EXTRAPOLATION_LIMIT
    return np.lexsort((-score, -np.where(outside, beyond, 0.0), ~outside))


def select_uncertain(score: np.ndarray, extrapolation: np.ndarray | None, x: np.ndarray, n: int, *,
                     seed: int = 0) -> np.ndarray:
    """The n candidates the model is least sure of: beyond the training range first, then by score."""
    return labelling_order(score, extrapolation)[:n]


def select_diverse(score: np.ndarray, extrapolation: np.ndarray | None, x: np.ndarray, n: int, *,
                   seed: int = 0) -> np.ndarray:
    """Uncertain and unlike each other: of the 5n least certain, one per cluster of their descriptors.

    Top-n by uncertainty can spend picks on near-copies of one unusual family.
    Candidates beyond the training range come first, as in
    :func:`labelling_order`. The rest of the ``n`` come from the next ``5 n``
    of that order: their descriptors are standardised, projected on their
    first principal components and grouped by k-means into as many clusters
    as picks are left (each candidate weighted by its score); the candidate
    nearest each cluster centre is picked. Returned in labelling order.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import pairwise_distances_argmin

    order = labelling_order(score, extrapolation)
    beyond = np.zeros(len(order)) if extrapolation is None else np.asarray(extrapolation, float)
    n_first = min(n, int(np.sum(beyond > EXTRAPOLATION_LIMIT)))
    left = n - n_first
    short = order[n_first: n_first + 5 * left]
    if left >= len(short):  # nothing to choose among (or nothing left to choose)
        return order[: n_first + len(short)]
    z = x[short] - x[short].mean(0)
    z = np.clip(z / np.where(z.std(0) > 0, z.std(0), 1.0), -5.0, 5.0)  # a few tail columns must not decide alone
    z = PCA(n_components=min(16, *z.shape), random_state=seed).fit_transform(z)
    weight = np.maximum(np.asarray(score, float)[short], 1e-12)
    centres = KMeans(n_clusters=left, n_init=3, random_state=seed).fit(z, sample_weight=weight).cluster_centers_
    nearest = pairwise_distances_argmin(centres, z)  # (in chunks: a big pool must not need a dense distance array)
    picked = np.unique(nearest)  # two centres can share a nearest candidate: fill up in labelling order
    rest = np.setdiff1d(np.arange(len(short)), picked)[: left - len(picked)]
    return np.concatenate([order[:n_first], short[np.sort(np.concatenate([picked, rest]))]])


def select_random(score: np.ndarray, extrapolation: np.ndarray | None, x: np.ndarray, n: int, *,
                  seed: int = 0) -> np.ndarray:
    """n candidates drawn at random (the baseline every other strategy must beat)."""
    return np.sort(np.random.default_rng(seed).choice(len(score), min(n, len(score)), replace=False))


#: How ``xanesnet select`` picks the next structures to simulate, by name.
SELECTION_STRATEGIES = {"diverse": select_diverse, "uncertainty": select_uncertain, "random": select_random}


def calibrate(predictor, x_val: np.ndarray, y_val: np.ndarray, *, spread: np.ndarray, kind: str = "scalar",
              settings=None) -> dict[str, Any]:
    """Calibration and trust threshold, per prediction mode the model supports, fitted on validation data.

    ``predictor`` is a :class:`~xanesnet.predict.Predictor` (of a model just
    trained, uncalibrated); ``spread`` the training spectra's std per energy point.

    ``settings`` is an :class:`~xanesnet.config.UncertaintySettings` (default: the defaults).
    """
    from xanesnet.config import UncertaintySettings

    settings = settings or UncertaintySettings()
    if len(x_val) < MIN_CALIBRATION_SPECTRA:
        logger.warning("the error bars and trust threshold are calibrated on %d validation spectr%s (fewer than %d): "
                       "too few to trust them; train on more spectra", len(x_val), "um" if len(x_val) == 1 else "a",
                       MIN_CALIBRATION_SPECTRA)
    spread = np.where(spread > 0, spread, 1.0)
    out: dict[str, Any] = {"spread": spread.tolist(), "calibration": {}, "trust": {}, "n_validation": int(len(x_val))}
    out["mc_samples"] = settings.mc_samples
    if predictor.has_variance:
        modes = ["predictive"]
    else:
        modes = (["ensemble"] if len(predictor.bundle.members) > 1 else []) + (["mc"] if predictor.has_dropout else [])
    for mode in modes:
        pred = predictor.predict_features(x_val, mc_samples=settings.mc_samples if mode == "mc" else None, calibrate=False)
        cal = fit_calibration(y_val, pred.mean, pred.std, kind=kind)
        out["calibration"][mode] = cal
        out["trust"][mode] = fit_trust(uncertainty_score(pred.std * np.asarray(cal["scale"]), spread),
                                       quantile=settings.trust_quantile)
    return out


def uncertainty_score(std: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Per-spectrum score: calibrated sigma over the training spectra's std at each point, averaged over energy."""
    return np.mean(std / spread, axis=-1)


def fit_trust(scores: np.ndarray, *, quantile: float = 0.95) -> dict[str, Any]:
    """Threshold on the uncertainty score: the validation scores' ``quantile``."""
    return {"quantile": quantile, "threshold": float(np.quantile(scores, quantile)),
            "validation_score_median": float(np.median(scores))}


def sigma_error_spearman(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Spearman correlation between each spectrum's mean sigma and its RMSE."""
    from scipy.stats import spearmanr

    rmse = np.sqrt(np.mean((y_true - mean) ** 2, axis=1))
    return float(spearmanr(std.mean(axis=1), rmse).statistic)


def uncertainty_metrics(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Coverage of +-1 and +-2 sigma and the sigma-error rank correlation (keys as in ``xanesnet evaluate``)."""
    return {"coverage_1sigma": coverage(y_true, mean, std, 1), "coverage_2sigma": coverage(y_true, mean, std, 2),
            "sigma_error_spearman": sigma_error_spearman(y_true, mean, std)}


def calibration_curve(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Expected vs observed coverage of central Gaussian intervals at ``n`` levels."""
    from scipy.stats import norm

    expected = np.linspace(0.05, 0.99, n)
    k = norm.ppf(0.5 + expected / 2)
    z = np.abs(y_true - mean) / std
    observed = np.array([np.mean(z <= kk) for kk in k])
    return expected, observed
