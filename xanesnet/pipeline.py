"""End-to-end workflows behind the CLI: files in, a saved model or metrics out.

Each function here is what one ``xanesnet`` subcommand runs, callable from
Python with the same arguments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xanesnet.config import Config
from xanesnet.data.dataset import (
    FeatureSet,
    Pairing,
    data_hash,
    featurize_files,
    heldout_mask,
    list_files,
    load_spectra,
    pair_by_stem,
    SPECTRUM_SUFFIXES,
)
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.atomic import write_json, write_npz, write_text  # noqa: F401  (re-exported)
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import resolve_absorber

logger = logging.getLogger(__name__)

#: Fewer validation spectra than this and the calibration of sigma and the trust threshold is not worth much: a warning.
MIN_CALIBRATION_SPECTRA = 10


@dataclass
class TrainingSet:
    """Features and spectra ready to fit, with where they came from."""

    ids: list[str]
    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray
    pairing: Pairing | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    elements: list[str] | None = None  # the absorber's element per molecule, where known
    descriptor: dict[str, Any] | None = None  # settings the features were made with, where known
    feature_names: list[str] | None = None


def build_training_set(xyz_dir: str | os.PathLike, spectra_dir: str | os.PathLike, config: Config, *,
                       absorber: int | str | None = None, spectrum_format: str | None = None,
                       cache: str | os.PathLike | None = None, skip_bad: bool = False,
                       progress: bool = False) -> TrainingSet:
    """Pair structures with spectra by name, featurise, and stack the spectra on one grid."""
    from xanesnet.io.structures import find_structure_files

    pairing = pair_by_stem(find_structure_files([xyz_dir]), list_files(spectra_dir, SPECTRUM_SUFFIXES))
    if pairing.structures_only or pairing.spectra_only:
        logger.info("unmatched files:\n%s", pairing.report())
    descriptor = descriptor_from_dict(config.descriptor)
    feats = featurize_files(pairing.structures, descriptor, absorber=absorber, cache=cache, skip_bad=skip_bad,
                            progress=progress)
    kept = set(feats.ids)
    spectra = [p for s, p in zip(pairing.stems, pairing.spectra) if s in kept]
    energy, y = load_spectra(spectra, fmt=spectrum_format, process=_spectrum_processor(config), progress=progress)
    from xanesnet.io.structures import absorber_element, read_structure

    elements = [absorber_element(read_structure(p), absorber) for s, p in zip(pairing.stems, pairing.structures) if s in kept]
    return TrainingSet(ids=feats.ids, x=feats.x, y=y, energy=energy, pairing=pairing, skipped=feats.skipped,
                       elements=elements)


def build_training_set_from_simulations(dataset: str | os.PathLike, config: Config, *, target: str = "xanes",
                                        absorber: int | str | None = None, elements: Sequence[str] | None = None,
                                        skip_bad: bool = False, progress: bool = False) -> TrainingSet:
    """Features and processed spectra from an ``xanesnet simulate`` HDF5 data set.

    ``elements`` keeps only molecules whose absorber is one of these elements
    (e.g. ``["Fe"]``); FEFF spectra come on per-molecule grids, so the config's
    ``spectra`` section should set a common ``grid``.
    """
    from ase.data import chemical_symbols

    from xanesnet.data.dataset import stack_spectra
    from xanesnet.simulate import read_simulations

    descriptor = descriptor_from_dict(config.descriptor)
    ids, rows, spectra, skipped, found = [], [], [], [], []
    wanted = None if elements is None else {e.capitalize() for e in elements}
    for sim in read_simulations(dataset, spectrum=target):
        s = sim.structure
        a = sim.absorber if absorber is None else resolve_absorber(s, absorber)
        if wanted is not None and chemical_symbols[s.numbers[a]] not in wanted:
            continue
        try:
            rows.append(descriptor.create(s, a))
        except XanesnetError as exc:
            if not skip_bad:
                raise
            skipped.append((s.name, str(exc)))
            continue
        ids.append(s.name)
        found.append(chemical_symbols[s.numbers[a]])
        spectra.append(sim.spectrum)
    if not ids:
        raise XanesnetError(f"no {target} spectra{' for ' + ', '.join(sorted(wanted)) if wanted else ''} in the data set", path=dataset)
    energy, y = stack_spectra(spectra, process=_spectrum_processor(config))
    return TrainingSet(ids=ids, x=np.vstack(rows), y=y, energy=energy, skipped=skipped, elements=found)


def load_feature_file(path: str | os.PathLike, *, need_y: bool = True) -> TrainingSet:
    """Prebuilt features: an ``.npz`` with arrays ``x``, ``y`` and optionally ``energy``, ``ids``, ``feature_names``
    and ``settings`` (as ``xanesnet featurize`` writes them; ``y`` is optional with ``need_y=False``, for predicting)."""
    path = Path(path)
    if not path.is_file():
        raise XanesnetError("no such file", path=path)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise XanesnetError(f"not a readable .npz file ({exc})", path=path) from None
    for key in ("x", "y") if need_y else ("x",):
        if key not in data:
            raise XanesnetError(f"missing array {key!r} (has: {', '.join(data.files)})", path=path)
    x = np.asarray(data["x"], float)
    y = np.asarray(data["y"], float) if "y" in data else None
    if x.ndim != 2 or (y is not None and (y.ndim != 2 or len(x) != len(y))):
        raise XanesnetError(f"x and y must be 2-D with equal rows, got {x.shape} and {None if y is None else y.shape}", path=path)
    energy = (np.asarray(data["energy"], float) if "energy" in data
              else np.arange(y.shape[1], dtype=float) if y is not None else None)
    ids = [str(i) for i in data["ids"]] if "ids" in data else [f"row{i}" for i in range(len(x))]
    import json

    settings = json.loads(str(data["settings"])) if "settings" in data else None
    names = [str(n) for n in data["feature_names"]] if "feature_names" in data else None
    return TrainingSet(ids=ids, x=x, y=y, energy=energy, descriptor=settings, feature_names=names)


def train_model(data: TrainingSet, config: Config, out: str | os.PathLike, *, holdout: float = 0.0,
                absorber: int | str | None = None, metadata: dict[str, Any] | None = None,
                init=None, weights_dtype: str = "float32", progress: bool = True) -> dict[str, Any]:
    """Fit a model on ``data`` (less a held-out share, if asked) and save it to ``out``.

    ``init`` (a :class:`~xanesnet.warmstart.WarmStart`) starts the networks
    from a saved model's weights. ``weights_dtype="float16"`` stores the
    weights in half precision if that moves no prediction of the validation
    split by :data:`FLOAT16_TOLERANCE` of its RMS or more (else float32, with
    a warning); calibration and held-out metrics are then those of the
    rounded weights. Returns the saved config (with held-out metrics under
    ``holdout_metrics`` when ``holdout`` > 0).
    """
    from xanesnet.bundle import save_bundle
    from xanesnet.training import train

    ids, x, y = data.ids, data.x, data.y
    test = heldout_mask(ids, holdout) if holdout > 0 else np.zeros(len(ids), bool)
    fit_ids = [i for i, t in zip(ids, test) if not t]
    if init is not None:
        init.check(config)
        init.check_data(x.shape[1], y.shape[1])
    trained = train(x[~test], y[~test], config, init=None if init is None else init.members, progress=progress)
    feature_names = (config.descriptor.feature_names if config.descriptor is not None
                     else data.feature_names or [f"x{i}" for i in range(x.shape[1])])
    if len(feature_names) != x.shape[1]:
        raise XanesnetError(f"the descriptor gives {len(feature_names)} features but the data have {x.shape[1]}")
    elements = sorted(set(data.elements or []))
    saved = {
        **model_config(trained, data.energy, feature_names),
        "absorber": absorber,
        "element": elements[0] if len(elements) == 1 else None,  # predict refuses other absorbers
        "edge": "K",
        "n_train": int(len(fit_ids)),
        "training_ids": fit_ids,  # so evaluate can tell training molecules from unseen ones
        "training_data_sha256": data_hash(fit_ids, x[~test], y[~test]),
        "training_seconds": round(trained.seconds, 2),
        "history": trained.history,
        **({} if init is None else {"init_from": init.provenance(config.training.ensemble)}),
        **{k: v for k, v in config.provenance.to_dict().items() if v is not None},
        **(metadata or {}),
    }
    if weights_dtype == "float16":
        weights_dtype = _narrow_if_harmless(trained, x[~test][trained.val_index], saved)
    predictor = calibrated_predictor(trained, x[~test], y[~test], saved)
    if test.any():
        saved["holdout"] = {"fraction": holdout, "rule": "sha256(name) mod 1000 < 1000*fraction",
                            "ids": [i for i, t in zip(ids, test) if t]}
        saved["holdout_metrics"] = score_predictions(predictor.predict_features(x[test]), y[test])
    saved["weights_dtype"] = weights_dtype
    save_bundle(out, saved, trained.members, weights_dtype=weights_dtype)
    return saved


#: float16 weights are kept only where no predicted spectrum moves by this share of its RMS or more.
FLOAT16_TOLERANCE = 1e-3


def float16_change(config: dict[str, Any], members: list, x: np.ndarray) -> float:
    """How far rounding the weights to float16 moves the predictions of ``x``.

    The largest ``max |change| / RMS`` over every member's (and dropout
    draw's) predicted spectrum, the RMS being that of the float32 prediction.
    ``config`` is a model config (scalers, target transform, grid).
    """
    from xanesnet.bundle import Bundle
    from xanesnet.predict import Predictor

    full = Predictor(Bundle(path=None, config=config, members=members)).predict_features(x, calibrate=False).samples
    half = Predictor(Bundle(path=None, config=config, members=[half_rounded(m) for m in members])).predict_features(
        x, calibrate=False).samples
    rms = np.sqrt(np.mean(full**2, axis=-1))
    return float(np.max(np.abs(half - full).max(axis=-1) / np.where(rms > 0, rms, 1.0)))


def half_rounded(net):
    """A copy of ``net`` whose float32 parameters and buffers are rounded to float16 precision (kept as float32)."""
    import copy

    import torch

    net = copy.deepcopy(net)
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.dtype == torch.float32:
                t.copy_(t.half().float())
    return net


def _narrow_if_harmless(trained, x_val: np.ndarray, saved: dict[str, Any]) -> str:
    """Round the trained members to float16 if :func:`float16_change` on ``x_val`` is below the tolerance."""
    change = float16_change(saved, trained.members, x_val)
    saved["float16_check"] = {"max_change_over_rms": change, "tolerance": FLOAT16_TOLERANCE, "n_spectra": int(len(x_val))}
    if change >= FLOAT16_TOLERANCE:
        logger.warning("float16 weights would move a validation prediction by %.2g of its RMS (limit %g): kept float32",
                       change, FLOAT16_TOLERANCE)
        return "float32"
    trained.members[:] = [half_rounded(m) for m in trained.members]
    return "float16"


def calibrated_predictor(trained, x: np.ndarray, y: np.ndarray, config: dict[str, Any]):
    """An in-memory :class:`~xanesnet.predict.Predictor` of a model just trained on ``x``, ``y``.

    ``config`` is the model's saved config (from :func:`model_config`); its
    ``uncertainty`` entry (calibration and trust threshold) is fitted here on
    the training run's own validation split.
    """
    from xanesnet.bundle import Bundle
    from xanesnet.predict import Predictor
    from xanesnet.uncertainty import calibrate

    predictor = Predictor(Bundle(path=None, config=config, members=trained.members))
    n_val = len(trained.val_index)
    if n_val < MIN_CALIBRATION_SPECTRA:
        logger.warning("the error bars and trust threshold are calibrated on %d validation spectr%s (fewer than %d): "
                       "too few to trust them; train on more spectra", n_val, "um" if n_val == 1 else "a",
                       MIN_CALIBRATION_SPECTRA)
    config["uncertainty"] = calibrate(predictor, x[trained.val_index], y[trained.val_index], spread=y.std(0),
                                      kind=trained.config.training.calibration, settings=trained.config.uncertainty)
    return predictor


def score_predictions(pred, y_true: np.ndarray) -> dict[str, Any]:
    """Accuracy metrics, plus coverage and sigma-error correlation when the prediction has an error bar."""
    from xanesnet.analysis.metrics import evaluate_spectra
    from xanesnet.uncertainty import uncertainty_metrics

    metrics = evaluate_spectra(pred.energy, y_true, pred.mean)
    if pred.score is not None:
        metrics.update(uncertainty_metrics(y_true, pred.mean, pred.std))
    if pred.trusted is not None:
        metrics["trusted_fraction"] = float(np.mean(pred.trusted))
    return metrics


def model_config(trained, energy: np.ndarray, feature_names: list[str]) -> dict[str, Any]:
    """What a trained model needs to predict, as saved in ``config.json`` (see :mod:`xanesnet.bundle`)."""
    config = trained.config
    return {
        "descriptor": {} if config.descriptor is None else config.descriptor.to_dict(),
        "model": trained.members[0].get_params(),
        "training": config.training.to_dict(),
        "spectra": None if config.spectra is None else config.spectra.to_dict(),
        "seed": trained.seed,
        "energy": np.asarray(energy, float).tolist(),
        "feature_names": feature_names,
        "x_scaler": trained.x_scaler.state(),
        "y_transform": trained.y_transform.state(),
    }


def _spectrum_processor(config: Config):
    """The spectrum processing the config asks for, or ``None`` (spectra must share one grid)."""
    if config.spectra is None:
        return None
    from xanesnet.spectra import processor_from_dict

    return processor_from_dict(config.spectra)


def featurize_to_npz(paths: Sequence[str | os.PathLike], descriptor_settings: dict[str, Any], out: str | os.PathLike, *,
                     absorber: int | str | None = None, skip_bad: bool = False, progress: bool = True,
                     spectra: str | os.PathLike | None = None, spectrum_format: str | None = None) -> FeatureSet:
    """``xanesnet featurize``: descriptor vectors of structure files, written to ``out`` (``.npz``).

    With ``spectra`` (a directory paired by file name; the spectra must share
    one grid) the file also holds ``y`` and ``energy``: ready for
    ``xanesnet train --features``. Structures without a spectrum are left out.
    """
    import json

    from xanesnet.io.structures import find_structure_files

    files = sorted(find_structure_files(list(paths)), key=lambda p: p.stem)
    if not files:
        raise XanesnetError("no structure files found in " + ", ".join(map(str, paths)))
    descriptor = descriptor_from_dict(descriptor_settings)
    targets: dict[str, np.ndarray] = {}
    if spectra is not None:
        pairing = pair_by_stem(files, list_files(spectra, SPECTRUM_SUFFIXES))
        if pairing.structures_only or pairing.spectra_only:
            logger.warning("unmatched files: %s", pairing.report())
        files = pairing.structures
    feats = featurize_files(files, descriptor, absorber=absorber, skip_bad=skip_bad, progress=progress)
    if spectra is not None:
        kept = set(feats.ids)
        energy, y = load_spectra([p for s, p in zip(pairing.stems, pairing.spectra) if s in kept], fmt=spectrum_format)
        targets = {"y": y, "energy": energy}
    write_npz(out, ids=np.array(feats.ids), x=feats.x, feature_names=np.array(descriptor.feature_names),
              settings=np.array(json.dumps(descriptor.to_dict())), **targets)
    return feats


def evaluate_model(model: str | os.PathLike, xyz_dir: str | os.PathLike | None, spectra_dir: str | os.PathLike | None, *,
                   features: str | os.PathLike | None = None, heldout_only: bool = False, absorber: int | str | None = None,
                   spectrum_format: str | None = None, mc_samples: int | None = None,
                   progress: bool = False) -> tuple[dict[str, Any], Any, TrainingSet]:
    """Metrics of a saved model on paired structures and spectra, or on a ``features`` file with ``y`` (the held-out split
    only, if asked), overall and per :data:`SPLITS` entry."""
    from xanesnet.predict import Predictor

    predictor = Predictor.from_bundle(model)
    cfg = predictor.bundle.config
    config = Config(descriptor=cfg["descriptor"], model=cfg["model"], spectra=cfg.get("spectra"))
    if features is not None:
        data = load_feature_file(features)
        spectra_dir = xyz_dir = features
    else:
        data = build_training_set(xyz_dir, spectra_dir, config,
                                  absorber=absorber if absorber is not None else cfg.get("absorber"),
                                  spectrum_format=spectrum_format, progress=progress)
    if heldout_only:
        if "holdout" not in cfg:
            raise XanesnetError("the model was trained without a held-out split (train with --holdout)", path=model)
        keep = np.isin(data.ids, cfg["holdout"]["ids"])
        if not keep.any():
            raise XanesnetError("none of the model's held-out molecules are in these directories", path=xyz_dir)
        data = TrainingSet(ids=[i for i, k in zip(data.ids, keep) if k], x=data.x[keep], y=data.y[keep],
                           energy=data.energy, pairing=data.pairing)
    if len(data.energy) != len(predictor.energy) or not np.allclose(data.energy, predictor.energy, atol=1e-6):
        raise XanesnetError(f"the spectra's grid ({data.energy[0]:g}-{data.energy[-1]:g} eV, {len(data.energy)} points) is not "
                            f"the model's ({predictor.energy[0]:g}-{predictor.energy[-1]:g} eV, {len(predictor.energy)} points)",
                            path=spectra_dir)
    pred = predictor.predict_features(data.x, ids=data.ids, mc_samples=mc_samples)
    metrics = score_predictions(pred, data.y)
    splits = np.array(split_of(data.ids, cfg))
    metrics["splits"] = {name: score_predictions(pred.take(splits == name), data.y[splits == name])
                         for name in SPLITS if np.any(splits == name)}
    pairing = data.pairing
    metrics["unmatched"] = {"structures_without_spectrum": [p.name for p in pairing.structures_only] if pairing else [],
                            "spectra_without_structure": [p.name for p in pairing.spectra_only] if pairing else []}
    return metrics, pred, data


#: How a molecule relates to a model: in its held-out split, in its training data (validation split included), in
#: neither, or (models saved without their training names) "not held out", i.e. possibly trained on.
SPLITS = ("heldout", "training", "unseen", "not_heldout")


def split_of(ids: Sequence[str], config: dict[str, Any]) -> list[str]:
    """:data:`SPLITS` entry of each molecule for a model's saved config."""
    held = set((config.get("holdout") or {}).get("ids", []))
    trained = config.get("training_ids")
    trained = set(trained) if trained is not None else None
    return ["heldout" if i in held else "not_heldout" if trained is None else "training" if i in trained else "unseen"
            for i in ids]


def normalize_files(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, fmt: str = "txt",
                    spectrum_format: str | None = None, e0: float | None = None,
                    **windows: float | None) -> list[tuple[Path, Any]]:
    """``xanesnet normalize``: each spectrum normalised as Larch's ``pre_edge`` does, to ``OUT/NAME.norm.FMT``.

    ``windows`` are :func:`~xanesnet.spectra.preedge.pre_edge`'s ``pre1``,
    ``pre2``, ``norm1``, ``norm2`` (eV from E0) and ``nnorm``; ``None`` keeps
    Larch's default. ``fmt`` ``"xdi"`` writes XDI 1.0 with a ``norm`` column.
    Returns each written file with its :class:`~xanesnet.spectra.preedge.PreEdge`.
    """
    from xanesnet import __version__
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.spectra.preedge import pre_edge

    if fmt not in ("txt", "xdi"):
        raise XanesnetError(f"unknown output format {fmt!r}; choose from txt, xdi")
    spectra = [read_spectrum(p, fmt=spectrum_format) for p in paths]  # every file read before anything is written
    written = []
    for s in spectra:
        try:
            edge = pre_edge(s.energy, s.intensity, e0=e0, **windows)
        except XanesnetError as exc:
            raise XanesnetError(exc.message, path=s.source) from None
        fields = {"e0": f"{edge.e0:.3f} eV (Larch pre_edge)", "edge_step": f"{edge.edge_step:.6g}",
                  "pre_edge_window": f"{edge.pre1:g} to {edge.pre2:g} eV from E0",
                  "post_edge_window": f"{edge.norm1:g} to {edge.norm2:g} eV from E0, polynomial degree {edge.nnorm}",
                  "source": s.source}
        if fmt == "xdi":
            element = s.meta.get("element") or "unknown"
            head = [f"# XDI/1.0 xanesnet/{__version__}", "# Column.1: energy eV", "# Column.2: norm",
                    f"# Element.symbol: {element}", f"# Element.edge: {s.meta.get('edge') or 'K'}",
                    f"# Scan.edge_energy: {edge.e0:.3f} eV", f"# Sample.name: {s.name}"]
            head += [f"# Xanesnet.{k}: {v}" for k, v in fields.items()]
            head += ["# ///", f"# {s.name}: normalised as Larch's pre_edge does", "#----", "# energy norm"]
        else:
            head = [f"# {s.name}: normalised as Larch's pre_edge does"] + [f"# {k} = {v}" for k, v in fields.items()]
            head.append("# energy_eV norm")
        table = "".join(f"{e:.4f} {y:.8e}\n" for e, y in zip(s.energy, edge.norm))
        written.append((write_text(Path(out_dir) / f"{s.name}.norm.{fmt}", "\n".join(head) + "\n" + table), edge))
    return written
