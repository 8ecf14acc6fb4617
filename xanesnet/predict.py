"""Predict spectra from structures with a saved model.

>>> predictor = Predictor.from_bundle("models/fe-k-xanes")
>>> result = predictor.predict_files(["ferrocene.xyz"])
>>> result.mean, result.std   # (n, points), on predictor.energy (eV)
"""

from __future__ import annotations

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
    """Predicted spectra: ensemble mean and standard deviation per energy point (eV)."""

    ids: list[str]
    energy: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray  # (n_samples, n, points): one row per member (and dropout draw)


class Predictor:
    """A loaded model ready to predict; build with :meth:`from_bundle`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.descriptor = bundle.descriptor
        self.energy = bundle.energy

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> "Predictor":
        return cls(load_bundle(path))

    def predict_features(self, x: np.ndarray, *, ids: Sequence[str] | None = None, batch_size: int = 4096) -> Prediction:
        """Spectra from descriptor vectors (n, n_features)."""
        import torch

        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n_feat = len(self.bundle.config["feature_names"])
        if x.shape[1] != n_feat:
            raise XanesnetError(f"features have {x.shape[1]} columns but the model expects {n_feat}")
        xs = torch.as_tensor(self.bundle.x_scaler.transform(x), dtype=torch.float32)
        tf = self.bundle.y_transform
        samples = np.empty((len(self.bundle.members), len(x), len(self.energy)))
        with torch.inference_mode():
            for m, net in enumerate(self.bundle.members):
                z = torch.cat([net(b) for b in xs.split(batch_size)]) if len(xs) else torch.empty(0, 0)
                samples[m] = tf.inverse_transform(z.numpy().astype(np.float64))
        ids = list(ids) if ids is not None else [str(i) for i in range(len(x))]
        return Prediction(ids=ids, energy=self.energy, mean=samples.mean(0), std=samples.std(0), samples=samples)

    def predict(self, structures: Sequence[Structure], *, absorber: int | str | None = None) -> Prediction:
        """Spectra of parsed structures."""
        x = self.descriptor.featurize(structures, absorber=absorber)
        return self.predict_features(x, ids=[s.name for s in structures])

    def predict_files(self, paths: Sequence[str | os.PathLike], *, absorber: int | str | None = None,
                      skip_bad: bool = False, progress: bool = False) -> tuple[Prediction, list[tuple[str, str]]]:
        """Spectra of structure files; returns the prediction and the skipped files with reasons."""
        from xanesnet.data.dataset import featurize_files

        feats = featurize_files(paths, self.descriptor, absorber=absorber, skip_bad=skip_bad, progress=progress)
        return self.predict_features(feats.x, ids=feats.ids), feats.skipped


def write_spectra(prediction: Prediction, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``NAME.txt`` per molecule (energy, intensity, std), each via a temporary file and a rename."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(prediction.ids):
        path = out_dir / f"{name}.txt"
        table = np.column_stack([prediction.energy, prediction.mean[i], prediction.std[i]])
        tmp = path.with_name(f".{path.name}.tmp")
        np.savetxt(tmp, table, fmt="%.4f %.8e %.8e", header=f"{name}\nenergy_eV intensity std")
        os.replace(tmp, path)
        written.append(path)
    return written
