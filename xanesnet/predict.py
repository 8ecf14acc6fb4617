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
    kind: str = "xanes"  # what the model predicts: "xanes" (absorption) or "xes" (emission)
    element: str | None = None  # the absorber element the model was trained on
    edge: str = "K"
    model: str | None = None  # the model's name (its directory)
    normalisation: str | None = None  # what the intensity scale is

    def describe(self) -> dict:
        """The model-level fields of :attr:`kind`, :attr:`element`, :attr:`edge`, :attr:`model`, :attr:`normalisation`."""
        return {"kind": self.kind, "element": self.element, "edge": self.edge, "model": self.model,
                "normalisation": self.normalisation, "uncertainty_mode": self.mode}

    def take(self, rows: np.ndarray) -> "Prediction":
        """The molecules selected by ``rows`` (a boolean mask or indices)."""
        import dataclasses

        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)

        def pick(a):
            return None if a is None else a[rows]

        return dataclasses.replace(
            self, ids=[self.ids[k] for k in rows], mean=self.mean[rows], std=self.std[rows], samples=self.samples[:, rows],
            score=pick(self.score), trusted=pick(self.trusted), extrapolation=pick(self.extrapolation),
            extrapolated_feature=None if self.extrapolated_feature is None else [self.extrapolated_feature[k] for k in rows],
            sites=None if self.sites is None else [self.sites[k] for k in rows], features=pick(self.features))

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


class Predictor:
    """A loaded model ready to predict; build with :meth:`from_bundle`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.energy = bundle.energy
        grid = (bundle.config.get("spectra") or {}).get("grid") or {}
        self.relative = isinstance(grid, dict) and grid.get("kind") == "relative"
        self.kind = bundle.config.get("spectrum") or "xanes"
        self.element = bundle.config.get("element")

    def describe(self, pred: "Prediction") -> "Prediction":
        """``pred`` with the model's kind, element, edge, name and intensity scale filled in."""
        config = self.bundle.config
        spectra = config.get("spectra") or {}
        pred.kind, pred.element, pred.edge = self.kind, self.element, config.get("edge") or "K"
        pred.model = self.bundle.path.name if self.bundle.path is not None else None
        source = config.get("reference") or "the training spectra"
        pred.normalisation = (f"edge step normalised ({spectra['normalisation']})" if spectra.get("normalisation")
                              else f"none: on the scale of {source}")
        return pred

    @property
    def descriptor(self):
        """The model's descriptor (an error for a model trained on precomputed features, when asked for)."""
        return self.bundle.descriptor

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> "Predictor":
        return cls(load_bundle(path))

    @property
    def has_dropout(self) -> bool:
        return any(net.has_dropout for net in self.bundle.members)

    @property
    def mc_samples(self) -> int:
        """Dropout draws per member for MC dropout (the model's uncertainty setting)."""
        from xanesnet.config import UncertaintySettings

        return int((self.bundle.config.get("uncertainty") or {}).get("mc_samples", UncertaintySettings().mc_samples))

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
        if not (np.all(np.isfinite(pred.mean)) and np.all(np.isfinite(pred.std))):
            raise XanesnetError("the model gave NaN or infinite spectra: it is corrupted", path=self.bundle.path)
        return self.describe(pred)

    def _predict_samples(self, x: np.ndarray, *, ids: list[str], mc_samples: int | None, batch_size: int,
                         calibrate: bool) -> Prediction:
        """Networks without their own variance: one sample per member and dropout draw."""
        import torch

        from xanesnet.uncertainty import mc_dropout

        mode = "mc" if mc_samples else self.default_mode()
        if mode == "mc" and not self.has_dropout:
            raise XanesnetError("--mc-samples needs a model trained with dropout > 0", path=self.bundle.path)
        draws = (mc_samples or self.mc_samples) if mode == "mc" else 1
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
        return self.bundle.members[0].has_variance

    def _predict_with_variance(self, x: np.ndarray, *, ids: list[str], calibrate: bool) -> Prediction:
        """Models with their own predictive variance (the Gaussian process): total variance over members."""
        import torch

        xs = torch.as_tensor(self.bundle.x_scaler.transform(x), dtype=torch.float64)
        tf = self.bundle.y_transform
        means, variances = [], []
        with torch.inference_mode():
            for net in self.bundle.members:
                m, v = net.predict(xs, variance=True)
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
        features=None if pred.features is None else mean(pred.features), kind=pred.kind, element=pred.element,
        edge=pred.edge, model=pred.model, normalisation=pred.normalisation)


#: Output formats of :func:`write_spectra` (the file suffix after the kind: ``NAME.xanes.txt``, ``NAME.xes.xdi``).
OUTPUT_FORMATS = ("txt", "xdi")


def summary(energy: np.ndarray, intensity: np.ndarray, kind: str) -> dict:
    """What a spectroscopist reads off a spectrum (eV).

    XANES: E0 and edge step as Larch's ``pre_edge`` defines them
    (:func:`xanesnet.spectra.preedge.pre_edge`) and the main peak (the global
    maximum). XES has no edge: the main line (the strongest emission) only.
    """
    from xanesnet.spectra.edge import main_peak

    e_peak, i_peak = (float(v[0]) if np.isfinite(v[0]) else None for v in main_peak(energy, intensity))  # None: at an end
    if kind == "xes":
        return {"main_line_ev": e_peak, "main_line_intensity": i_peak}
    from xanesnet.spectra.preedge import pre_edge

    edge = pre_edge(energy, intensity)
    return {"e0_ev": edge.e0, "edge_step": edge.edge_step, "main_peak_ev": e_peak, "main_peak_intensity": i_peak}


def energy_shifts(prediction: Prediction, e0: float | None = None) -> np.ndarray:
    """Per molecule, what to add to :attr:`Prediction.energy` (eV) so that its E0 is ``e0``.

    A model on a grid relative to the edge predicts energies relative to E0:
    ``e0`` places them on the absolute scale. For an absolute model ``e0``
    aligns each prediction's Larch E0 with ``e0`` (a measurement's E0, say):
    theory's absolute energies are not experiment's. Without ``e0``: no shift.
    """
    n = len(prediction.ids)
    if e0 is None:
        return np.zeros(n)
    if prediction.kind == "xes":
        raise XanesnetError("--e0 aligns absorption edges; an emission (XES) spectrum has no edge")
    if prediction.relative:
        return np.full(n, float(e0))
    return np.array([e0 - summary(prediction.energy, prediction.mean[k], "xanes")["e0_ev"] for k in range(n)])


def prediction_records(prediction: Prediction, *, e0: float | None = None) -> list[dict]:
    """One dict per molecule: what the model is, the (shifted) spectrum and its summary, the uncertainty and trust."""
    shifts = energy_shifts(prediction, e0)
    records = []
    for k, name in enumerate(prediction.ids):
        energy = prediction.energy + shifts[k]
        absolute = not prediction.relative or e0 is not None
        rec = {"name": name, **prediction.describe(), "energy_reference": "absolute" if absolute else "e0",
               "energy_shift_ev": float(shifts[k])}
        rec.update(summary(energy, prediction.mean[k], prediction.kind))
        rec.update({
            "uncertainty_score": None if prediction.score is None else float(prediction.score[k]),
            "trust_threshold": prediction.threshold,
            "trusted": None if prediction.trusted is None else bool(prediction.trusted[k]),
            "extrapolation": None if prediction.extrapolation is None else {
                "feature": prediction.extrapolated_feature[k],
                "training_std_beyond_range": _json_number(prediction.extrapolation[k])},
            "absorber_atoms": None if prediction.sites is None else prediction.sites[k],
            "energy": energy.tolist(), "intensity": prediction.mean[k].tolist(), "std": prediction.std[k].tolist()})
        records.append(rec)
    return records


def _json_number(value: float) -> float | str:
    """A float for JSON; infinity (a feature constant in training that differs) as the string "inf"."""
    import math

    return float(value) if math.isfinite(value) else "inf"


def trust_verdict(record: dict) -> str:
    """``trusted``, ``NOT trusted`` or ``no error bar`` (a model without ensemble or dropout)."""
    return {True: "trusted", False: "NOT trusted", None: "no error bar"}[record["trusted"]]


def _header_fields(record: dict) -> list[tuple[str, str]]:
    """The header of a written spectrum as (name, value) pairs, shared by the text and XDI formats."""
    def num(v, fmt=".6g"):
        return "none" if v is None else format(v, fmt)

    kind = record["kind"]
    scale = "normalised absorption" if kind == "xanes" else "emission intensity (arb. units)"
    fields = [("kind", kind), ("element", record["element"] or "unknown"), ("edge", record["edge"]),
              ("model", record["model"] or "in memory"), ("normalisation", record["normalisation"] or "unknown"),
              ("units", f"energy eV; intensity and std: {scale}")]
    if kind == "xanes":
        fields += [("e0", f"{record['e0_ev']:.2f} eV (Larch pre_edge)"), ("edge_step", num(record["edge_step"], ".4g")),
                   ("main_peak", num(record["main_peak_ev"], ".2f") + " eV")]
    else:
        fields += [("main_line", num(record["main_line_ev"], ".2f") + " eV")]
    fields += [("energy_reference", "absolute" if record["energy_reference"] == "absolute" else "relative to E0"),
               ("energy_shift", f"{record['energy_shift_ev']:.3f} eV"), ("uncertainty_mode", record["uncertainty_mode"] or "none"),
               ("uncertainty_score", num(record["uncertainty_score"], ".4g")),
               ("trust_threshold", num(record["trust_threshold"], ".4g")), ("trust", trust_verdict(record))]
    ext = record["extrapolation"]
    if ext is not None:
        d = ext["training_std_beyond_range"]
        value = d if d == "inf" else format(d, ".4g")
        fields.append(("beyond_training_range", value + (f" ({ext['feature']})" if ext["feature"] else "")))
    if record["absorber_atoms"] is not None and len(record["absorber_atoms"]) > 1:
        fields.append(("absorber_atoms", " ".join(map(str, record["absorber_atoms"])) + " (averaged)"))
    return fields


def _text_file(record: dict) -> str:
    from xanesnet import __version__

    title = f"{record['name']}: {record['element'] or ''} {record['edge']}-edge {record['kind'].upper()} predicted by xanesnet {__version__}"
    lines = [f"# {' '.join(title.split())}"] + [f"# {k} = {v}" for k, v in _header_fields(record)]
    column = "energy_eV" if record["energy_reference"] == "absolute" else "energy_minus_E0_eV"
    lines.append(f"# {column} intensity std")
    return "\n".join(lines) + "\n" + _table(record)


def _xdi_file(record: dict) -> str:
    """XDI 1.0: the standard Element, Scan and Sample fields, ours in the ``Xanesnet`` namespace."""
    from xanesnet import __version__

    signal = "mu" if record["kind"] == "xanes" else "intensity"
    lines = [f"# XDI/1.0 xanesnet/{__version__}", "# Column.1: energy eV", f"# Column.2: {signal}", "# Column.3: std",
             f"# Element.symbol: {record['element'] or 'unknown'}", f"# Element.edge: {record['edge']}"]
    if record["kind"] == "xanes" and record["energy_reference"] == "absolute":
        lines.append(f"# Scan.edge_energy: {record['e0_ev']:.3f} eV")
    lines.append(f"# Sample.name: {record['name']}")
    lines += [f"# Xanesnet.{k}: {v}" for k, v in _header_fields(record)]
    lines += ["# ///", f"# {record['name']}: predicted {record['kind'].upper()} spectrum; std is the calibrated "
              "1-sigma uncertainty per point", "#----", f"# energy {signal} std"]
    return "\n".join(lines) + "\n" + _table(record)


def _table(record: dict) -> str:
    return "".join(f"{e:.4f} {y:.8e} {s:.8e}\n" for e, y, s in zip(record["energy"], record["intensity"], record["std"]))


def write_spectra(prediction: Prediction, out_dir: str | os.PathLike, *, e0: float | None = None,
                  fmt: str = "txt") -> list[Path]:
    """Write ``NAME.KIND.FMT`` per molecule (``ferrocene.xanes.txt``): all of them, or (on a write error) none.

    Each file goes to a unique temporary name first; only when all are written
    are they renamed into place (the free space is checked before the first).

    Columns: energy (eV), intensity, std; the header says what the spectrum
    is (kind, element, edge, model, normalisation, units), its E0 (Larch
    convention) or main line, the energy shift applied and the trust verdict.
    ``fmt`` ``"xdi"`` writes XDI 1.0 (read by Larch and Athena). ``e0``: see
    :func:`energy_shifts`.
    """
    from xanesnet.io.files import write_all

    if fmt not in OUTPUT_FORMATS:
        raise XanesnetError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    render = _xdi_file if fmt == "xdi" else _text_file
    out_dir = Path(out_dir)
    records = prediction_records(prediction, e0=e0)
    paths = [out_dir / f"{rec['name']}.{prediction.kind}.{fmt}" for rec in records]
    size = len(render(records[0]).encode()) * len(records) if records else 0
    return write_all(paths, lambda i, tmp: tmp.write_text(render(records[i])), min_free=size)
