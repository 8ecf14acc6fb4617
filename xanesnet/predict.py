"""Predict spectra from structures with a saved model.

>>> predictor = Predictor.from_bundle("models/fe-k-xanes")
>>> result = predictor.predict_files(["ferrocene.xyz"])
>>> result.mean, result.std   # (n, points), on predictor.energy (eV)
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from xanesnet.bundle import Bundle, load_bundle
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Predicted spectra: mean and calibrated standard deviation per energy point (eV), and trust.

    ``samples`` holds one row per ensemble member (times dropout draws);
    ``score`` is the scalar uncertainty of each spectrum. ``extrapolation``
    is how far (in training standard deviations) the molecule's most unusual
    descriptor value lies beyond the training range, ``extrapolated_feature``
    names that feature (``None`` inside the range; both are ``None`` for
    models saved without the range).
    ``trusted`` is ``score <= threshold`` and ``extrapolation <=``
    :data:`~xanesnet.uncertainty.EXTRAPOLATION_LIMIT` (``None`` where the
    model gives neither).
    ``sites`` lists each molecule's absorbing atoms when they were predicted
    from files (several when the absorber was given as an element that occurs
    more than once: the spectrum is then the average over those sites).
    ``features`` are the descriptor vectors predicted from (the mean over sites).
    """

    ids: list[str]
    energy: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray
    mode: str | None = None
    score: np.ndarray | None = None
    trusted: np.ndarray | None = None
    threshold: float | None = None
    relative: bool = False  # energies relative to the edge E0 (a model trained on a relative grid)
    extrapolation: np.ndarray | None = None
    extrapolated_feature: list[str] | None = None
    sites: list[list[int]] | None = None
    features: np.ndarray | None = None

    def warnings(self) -> list[str]:
        """One line per spectrum that is not trusted, naming the molecule and saying why."""
        from xanesnet.uncertainty import EXTRAPOLATION_LIMIT

        lines = []
        for k in np.flatnonzero(~self.trusted) if self.trusted is not None else []:
            why = []
            if self.score is not None and self.score[k] > self.threshold:
                why.append(f"uncertainty score {self.score[k]:.3g} is above the model's threshold {self.threshold:.3g} "
                           "(outside the training data?)")
            if self.extrapolation is not None and np.isinf(self.extrapolation[k]):
                why.append(f"descriptor feature {self.extrapolated_feature[k]} had one value for every training molecule "
                           "and another here (an element or contact the model has never seen; set to the training value)")
            elif self.extrapolation is not None and self.extrapolation[k] > EXTRAPOLATION_LIMIT:
                why.append(f"descriptor feature {self.extrapolated_feature[k]} is {self.extrapolation[k]:.3g} training "
                           "standard deviations beyond anything in the training data (a bond, contact or angle the model "
                           f"has never seen; clipped to {EXTRAPOLATION_LIMIT:g} std beyond the range)")
            lines.append(f"{self.ids[k]}: prediction NOT trusted: " + "; ".join(why))
        return lines


DEFAULT_MC_SAMPLES = 20


class Predictor:
    """A loaded model ready to predict; build with :meth:`from_bundle`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.descriptor = bundle.descriptor
        self.energy = bundle.energy
        grid = (bundle.config.get("spectra") or {}).get("grid") or {}
        self.relative = isinstance(grid, dict) and grid.get("kind") == "relative"

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> "Predictor":
        return cls(load_bundle(path))

    @property
    def has_dropout(self) -> bool:
        return float(self.bundle.config["model"].get("dropout", 0.0)) > 0.0

    def default_mode(self) -> str | None:
        """``ensemble`` for several members, ``mc`` for one member with dropout, else ``None`` (no error bar)."""
        if len(self.bundle.members) > 1:
            return "ensemble"
        return "mc" if self.has_dropout else None

    def predict_features(self, x: np.ndarray, *, ids: Sequence[str] | None = None, mc_samples: int | None = None,
                         batch_size: int = 4096, calibrate: bool = True) -> Prediction:
        """Spectra from descriptor vectors (n, n_features).

        ``mc_samples`` draws that many dropout masks per member (MC dropout,
        combinable with an ensemble); by default a single-member model with
        dropout uses 20 and an ensemble none.
        """
        from xanesnet.uncertainty import EXTRAPOLATION_LIMIT, out_of_range

        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        names = self.bundle.config["feature_names"]
        if x.shape[1] != len(names):
            raise XanesnetError(f"features have {x.shape[1]} columns but the model expects {len(names)}")
        ids = list(ids) if ids is not None else [str(i) for i in range(len(x))]
        scaler = self.bundle.x_scaler
        distance = None
        if scaler.min_ is not None:
            distance, worst, x = out_of_range(x, scaler)
        if self.has_variance:
            pred = self._predict_with_variance(x, ids=ids, calibrate=calibrate)
        else:
            pred = self._predict_samples(x, ids=ids, mc_samples=mc_samples, batch_size=batch_size, calibrate=calibrate)
        if distance is not None:
            pred.extrapolation = distance
            pred.extrapolated_feature = [names[f] if d > 0 else None for f, d in zip(worst, distance)]
            inside = distance <= EXTRAPOLATION_LIMIT
            pred.trusted = inside if pred.trusted is None else pred.trusted & inside
        pred.features = x
        return pred

    def _predict_samples(self, x: np.ndarray, *, ids: list[str], mc_samples: int | None, batch_size: int,
                         calibrate: bool) -> Prediction:
        """Networks without their own variance: one sample per member and dropout draw."""
        import torch

        from xanesnet.uncertainty import mc_dropout

        mode = "mc" if mc_samples else self.default_mode()
        if mode == "mc" and not self.has_dropout:
            raise XanesnetError("--mc-samples needs a model trained with dropout > 0", path=self.bundle.path)
        draws = (mc_samples or DEFAULT_MC_SAMPLES) if mode == "mc" else 1
        xs = torch.as_tensor(self.bundle.x_scaler.transform(x), dtype=torch.float32)
        tf = self.bundle.y_transform
        samples = np.empty((len(self.bundle.members) * draws, len(x), len(self.energy)))
        torch.manual_seed(int(self.bundle.config.get("seed") or 0))  # dropout masks are reproducible
        with torch.inference_mode():
            for m, net in enumerate(self.bundle.members):
                ctx = mc_dropout(net) if mode == "mc" else contextlib.nullcontext()
                with ctx:
                    for d in range(draws):
                        z = torch.cat([net(b) for b in xs.split(batch_size)]) if len(xs) else torch.empty(0, 0)
                        samples[m * draws + d] = tf.inverse_transform(z.numpy().astype(np.float64))
        pred = Prediction(ids=ids, energy=self.energy, mean=samples.mean(0), std=samples.std(0), samples=samples, mode=mode,
                          relative=self.relative)
        return self._calibrated(pred) if calibrate else pred

    @property
    def has_variance(self) -> bool:
        return hasattr(self.bundle.members[0], "forward_with_var")

    def _predict_with_variance(self, x: np.ndarray, *, ids: list[str], calibrate: bool) -> Prediction:
        """Models with their own predictive variance (the Gaussian process): total variance over members."""
        import torch

        xs = torch.as_tensor(self.bundle.x_scaler.transform(x), dtype=torch.float64)
        tf = self.bundle.y_transform
        means, variances = [], []
        with torch.inference_mode():
            for net in self.bundle.members:
                m, v = net.forward_with_var(xs)
                means.append(tf.inverse_transform(m.numpy()))
                variances.append(tf.inverse_variance(v.numpy()))
        samples = np.array(means)
        std = np.sqrt(samples.var(0) + np.mean(variances, axis=0))
        pred = Prediction(ids=ids, energy=self.energy, mean=samples.mean(0), std=std, samples=samples, mode="predictive",
                          relative=self.relative)
        return self._calibrated(pred) if calibrate else pred

    def _calibrated(self, pred: Prediction) -> Prediction:
        """Apply the saved calibration and trust threshold of the prediction's mode, if any."""
        from xanesnet.uncertainty import apply_calibration, uncertainty_score

        mode = pred.mode
        unc = self.bundle.config.get("uncertainty", {})
        if mode is not None and mode in unc.get("calibration", {}):
            pred.std = apply_calibration(pred.std, unc["calibration"][mode])
            pred.score = uncertainty_score(pred.std, np.asarray(unc["spread"], float))
            pred.threshold = float(unc["trust"][mode]["threshold"])
            pred.trusted = pred.score <= pred.threshold
        return pred

    def predict(self, structures: Sequence[Structure], *, absorber: int | str | None = None) -> Prediction:
        """Spectra of parsed structures."""
        x = self.descriptor.featurize(structures, absorber=absorber)
        return self.predict_features(x, ids=[s.name for s in structures])

    def predict_files(self, paths: Sequence[str | os.PathLike], *, absorber: int | str | None = None,
                      skip_bad: bool = False, progress: bool = False, mc_samples: int | None = None
                      ) -> tuple[Prediction, list[tuple[str, str]]]:
        """Spectra of structure files; returns the prediction and the skipped files with reasons."""
        from xanesnet.data.dataset import featurize_files

        feats = featurize_files(paths, self.descriptor, absorber=absorber, skip_bad=skip_bad, progress=progress,
                                all_sites=True)
        pred = self.predict_features(feats.x, ids=feats.ids if len(feats.x) == len(feats.ids) else None,
                                     mc_samples=mc_samples)
        if len(feats.x) > len(feats.ids):
            pred = average_sites(pred, feats.site_of, feats.ids)
        pred.sites = feats.sites
        return pred, feats.skipped


def average_sites(pred: Prediction, site_of: np.ndarray, ids: Sequence[str]) -> Prediction:
    """One spectrum per molecule from one per absorbing site (rows with the same ``site_of``): their average.

    The K-edge spectrum of a molecule with several atoms of the absorbing
    element is the mean of the sites' spectra. Its ``std`` is the mean of the
    sites' (calibrated) ``std``: exact when the sites' errors are fully
    correlated, an upper bound otherwise. A molecule is only as trusted as its
    least trusted site: it gets the largest ``score`` and ``extrapolation``.
    """
    counts = np.bincount(site_of, minlength=len(ids))
    if np.any(counts == 0) or np.any(np.diff(site_of) < 0):
        raise ValueError("site_of must list every molecule's rows together, in order")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def mean(a: np.ndarray, axis: int = 0) -> np.ndarray:
        shape = [1] * a.ndim
        shape[axis] = len(counts)
        return np.add.reduceat(a, starts, axis=axis) / counts.reshape(shape)

    worst = None
    if pred.extrapolation is not None:
        worst = np.array([s + int(np.argmax(pred.extrapolation[s:s + c])) for s, c in zip(starts, counts)], dtype=int)
    return Prediction(
        ids=list(ids), energy=pred.energy, mean=mean(pred.mean), std=mean(pred.std), samples=mean(pred.samples, axis=1),
        mode=pred.mode, score=None if pred.score is None else np.maximum.reduceat(pred.score, starts),
        trusted=None if pred.trusted is None else np.logical_and.reduceat(pred.trusted, starts),
        threshold=pred.threshold, relative=pred.relative,
        extrapolation=None if worst is None else pred.extrapolation[worst],
        extrapolated_feature=None if worst is None else [pred.extrapolated_feature[k] for k in worst],
        features=None if pred.features is None else mean(pred.features))


def write_spectra(prediction: Prediction, out_dir: str | os.PathLike, *, e0: float | None = None) -> list[Path]:
    """Write ``NAME.txt`` per molecule (energy, intensity, std), each via a temporary file and a rename.

    A model trained on a grid relative to the edge predicts relative energies;
    ``e0`` (eV) places them on the absolute scale.
    """
    if e0 is not None and not prediction.relative:
        raise XanesnetError("--e0 applies only to models trained on a grid relative to the edge; this one is absolute")
    energy = prediction.energy + (e0 or 0.0)
    column = "energy_minus_E0_eV" if prediction.relative and e0 is None else "energy_eV"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(prediction.ids):
        path = out_dir / f"{name}.txt"
        table = np.column_stack([energy, prediction.mean[i], prediction.std[i]])
        tmp = path.with_name(f".{path.name}.tmp")
        trust = "" if prediction.score is None else f" | uncertainty_score = {prediction.score[i]:.4g}"
        if prediction.extrapolation is not None:
            feature = prediction.extrapolated_feature[i]
            trust += f" | beyond_training_range = {prediction.extrapolation[i]:.4g}" + (f" ({feature})" if feature else "")
        if prediction.trusted is not None:
            trust += f" | trusted = {str(bool(prediction.trusted[i])).lower()}"
        if prediction.sites is not None and len(prediction.sites[i]) > 1:
            trust += f" | absorber_atoms = {' '.join(map(str, prediction.sites[i]))} (averaged)"
        np.savetxt(tmp, table, fmt="%.4f %.8e %.8e", header=f"{name}{trust}\n{column} intensity std")
        os.replace(tmp, path)
        written.append(path)
    return written
