"""End-to-end workflows behind the CLI: files in, a saved model or metrics out.

Each function here is what one ``xanesnet`` subcommand runs, callable from
Python with the same arguments. The data they work on come from
:mod:`xanesnet.data.sources`, calibration from :mod:`xanesnet.uncertainty`,
scores from :mod:`xanesnet.analysis.metrics` and the saved config from
:mod:`xanesnet.bundle`; the names are re-exported here for existing callers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xanesnet.analysis.metrics import score_predictions  # noqa: F401  (re-exported)
from xanesnet.atomic import write_json, write_npz, write_text  # noqa: F401  (re-exported)
from xanesnet.bundle import model_config  # noqa: F401  (re-exported)
from xanesnet.config import Config
from xanesnet.data.dataset import (
    FeatureSet,
    SPECTRUM_SUFFIXES,
    data_hash,
    featurize_files,
    heldout_mask,
    list_files,
    load_spectra,
    pair_by_stem,
)
from xanesnet.data.sources import (  # noqa: F401  (re-exported)
    TrainingSet,
    build_training_set,
    build_training_set_from_simulations,
    load_feature_file,
    spectrum_processor,
)
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.errors import XanesnetError
from xanesnet.uncertainty import MIN_CALIBRATION_SPECTRA  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


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


def float16_change(config: dict[str, Any], members: list, x: np.ndarray, *, noise_draws: int = 0, seed: int = 0) -> float:
    """How far rounding the weights to float16 moves the predictions of ``x``.

    The prediction is what a user gets: the mean spectrum and its standard
    deviation (over the members, and dropout draws where the model makes
    them). The change is the largest ``max |change| / RMS`` of either, per
    spectrum, the RMS being that of the float32 mean prediction. ``config``
    is a model config (scalers, target transform, grid). With
    ``noise_draws``, also the largest change of the rounded networks'
    prediction when every weight moves by uniform noise of up to half a
    float16 step (the stored weights promise no more than that: any such
    weights could have been rounded to them), drawn that many times (seeded).
    """
    import torch

    from xanesnet.bundle import Bundle
    from xanesnet.predict import Predictor

    def predict(nets: list):
        return Predictor(Bundle(path=None, config=config, members=nets)).predict_features(x, calibrate=False)

    def change(a, b) -> float:
        return prediction_change(a.mean, a.std, b.mean, b.std)

    half = [half_rounded(m) for m in members]
    rounded = predict(half)
    worst = change(predict(members), rounded)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(noise_draws):
        worst = max(worst, change(rounded, predict([_half_step_noise(m, gen) for m in half])))
    return worst


def prediction_change(mean: np.ndarray, std: np.ndarray, other_mean: np.ndarray, other_std: np.ndarray) -> float:
    """The largest change of a predicted mean spectrum or its std, per spectrum relative to the RMS of ``mean``."""
    rms = np.sqrt(np.mean(np.asarray(mean) ** 2, axis=-1))
    rms = np.where(rms > 0, rms, 1.0)
    return float(max(np.max(np.abs(other_mean - mean).max(axis=-1) / rms),
                     np.max(np.abs(other_std - std).max(axis=-1) / rms)))


def _half_step_noise(net, gen):
    """A copy of ``net`` with uniform noise of up to half a float16 step added to every float32 parameter."""
    import copy

    import torch

    net = copy.deepcopy(net)
    with torch.no_grad():
        for t in net.parameters():
            if t.dtype == torch.float32:
                step = torch.as_tensor(np.spacing(np.abs(t.numpy()).astype(np.float16)).astype(np.float32))
                t.add_((torch.rand(t.shape, generator=gen) - 0.5) * step)
    return net


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
    config["uncertainty"] = calibrate(predictor, x[trained.val_index], y[trained.val_index], spread=y.std(0),
                                      kind=trained.config.training.calibration, settings=trained.config.uncertainty)
    return predictor


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
