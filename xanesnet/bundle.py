"""Save and load a model directory: ``config.json`` + ``weights.pt`` (state dicts only).

``config.json`` carries everything predict needs (descriptor settings, model
settings, scaler statistics, target transform, energy grid, feature names,
versions, seed, training-data hash, calibration); ``weights.pt`` holds one
state dict per ensemble member and is loaded with ``weights_only=True``. Its
SHA-256 is recorded in the config, and the config (with that SHA-256) carries
a SHA-256 of itself, ``model_sha256``: the checksum covers the whole model,
so a corrupted, swapped or hand-edited file is refused. Every value is
checked as well (:func:`check_config`), so a model saved before the
whole-model checksum existed loads only if it is sane.
Weights may be stored as float16 (``weights_dtype``; half the size): they are
widened to float32 on loading. Only float32 tensors are narrowed (float64
buffers such as a Gaussian process's stay as they are); whether the rounding
is harmless is checked by the caller (see
:func:`xanesnet.pipeline.float16_change`). Directories are written under a
temporary name and swapped into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import logging
import os
import platform
import shutil
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from xanesnet import __version__
from xanesnet.errors import XanesnetError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"
WEIGHT_DTYPES = ("float32", "float16")
#: Key of the whole-model SHA-256 in config.json (see :func:`model_checksum`).
CHECKSUM_KEY = "model_sha256"
#: Bytes: larger model files are refused before they are read.
MAX_CONFIG_BYTES, MAX_WEIGHTS_BYTES = 32 * 2**20, 512 * 2**20


@dataclass
class Bundle:
    """A loaded model: its config and rebuilt networks, transforms and descriptor."""

    path: Path | None
    config: dict[str, Any]
    members: list = field(default_factory=list)

    @property
    def energy(self) -> np.ndarray:
        return np.asarray(self.config["energy"], float)

    @cached_property
    def descriptor(self):
        from xanesnet.descriptors import descriptor_from_dict

        if not self.config["descriptor"]:  # trained with `train --features` on vectors made elsewhere
            raise XanesnetError("this model was trained on precomputed features without descriptor settings: predict "
                                "with --features X.npz (arrays ids, x)", path=self.path)
        return descriptor_from_dict(self.config["descriptor"])

    @cached_property
    def x_scaler(self):
        from xanesnet.transforms import input_scaler_from_state

        return input_scaler_from_state(self.config["x_scaler"])

    @cached_property
    def y_transform(self):
        from xanesnet.transforms import transform_from_state

        return transform_from_state(self.config["y_transform"])


def save_bundle(path: str | os.PathLike, config: dict[str, Any], members: list, *, weights_dtype: str = "float32") -> Path:
    """Write a model directory atomically; an existing model is replaced only once the new one is complete.

    ``weights_dtype="float16"`` stores the float32 weights in half precision.

    The old and new directories swap names in one step (see
    :func:`xanesnet.io.files.replace_directory`), so a kill at any moment
    leaves a whole model at ``path``. A path holding anything but a model is
    never replaced.
    """
    import torch

    from xanesnet.io.files import prepare_directory, replace_directory, temporary_path, write_error

    if weights_dtype not in WEIGHT_DTYPES:
        raise XanesnetError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weights_dtype!r}")
    path = Path(path)
    if path.exists() and not _replaceable(path):
        raise XanesnetError("exists and is not a model directory (it holds other files); xanesnet replaces only a "
                            "model directory: choose another --out", path=path)
    prepare_directory(path.parent)
    tmp = temporary_path(path)
    try:
        tmp.mkdir(mode=0o755)
        torch.save({"members": [_stored(m.state(), weights_dtype) for m in members]}, tmp / WEIGHTS_FILE)
        config = stamp({
            **config,
            "weights_dtype": weights_dtype,
            "format_version": FORMAT_VERSION,
            "versions": {"xanesnet": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "weights_sha256": _sha256(tmp / WEIGHTS_FILE),
        })
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        replace_directory(tmp, path)
    except OSError as exc:
        raise write_error(exc, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("saved model to %s", path)
    return path


def _replaceable(path: Path) -> bool:
    """A directory holding nothing but a model's files (or nothing)."""
    return path.is_dir() and not path.is_symlink() and {p.name for p in path.iterdir()} <= {CONFIG_FILE, WEIGHTS_FILE}


def model_checksum(config: dict[str, Any]) -> str:
    """SHA-256 of the whole model: its config (canonical JSON, without this checksum), which holds the weights' SHA-256."""
    body = {k: v for k, v in config.items() if k != CHECKSUM_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stamp(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (as it reads back from JSON) with its whole-model checksum."""
    config = json.loads(json.dumps({k: v for k, v in config.items() if k != CHECKSUM_KEY}))
    return {**config, CHECKSUM_KEY: model_checksum(config)}


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Load and check a model directory; a missing, corrupted or mismatched one raises :class:`XanesnetError`.

    Checks, in order, each a one-line error naming the directory: both files
    present as regular files of sane size; config.json a JSON object; the
    whole-model checksum (models saved before it existed are checked by value
    alone); weights.pt against its checksum; every config value (types,
    lengths, finite scaler statistics, descriptor sizes bounded before any
    feature name is built); the weights loaded with ``weights_only=True``,
    finite, and fitting the architecture.
    """
    path = Path(path)
    config, state = read_model_dir(path, ("descriptor", "model", "energy", "x_scaler", "y_transform", "feature_names"))
    try:
        check_config(config)
    except XanesnetError as exc:
        raise XanesnetError(f"corrupted model: config.json: {exc.message}", path=path) from None
    members = build_members(path, config, state, n_in=len(config["feature_names"]), n_out=_n_outputs(config))
    return Bundle(path=path, config=config, members=members)


def read_model_dir(path: Path, required: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config.json`` (a JSON object with the ``required`` keys, its format version and whole-model checksum
    checked) and the checksummed ``weights.pt`` (tensors only, all finite), or a one-line :class:`XanesnetError`."""
    if not path.is_dir():
        raise XanesnetError("no such model directory", path=path)
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p, limit in ((cfg_path, MAX_CONFIG_BYTES), (w_path, MAX_WEIGHTS_BYTES)):
        _check_model_file(path, p, limit)
    try:
        config = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise XanesnetError(f"corrupted model: config.json is not valid JSON ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:80] if str(exc) else ''})", path=path) from None
    if not isinstance(config, dict):
        raise XanesnetError(f"corrupted model: config.json holds a {type(config).__name__}, not a JSON object", path=path)
    missing = [k for k in ("format_version", *required, "weights_sha256") if k not in config]
    if missing:
        raise XanesnetError(f"corrupted model: config.json lacks {', '.join(missing)}", path=path)
    version = config["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise XanesnetError(f"corrupted model: format_version is {str(version)[:20]!r}, not a whole number >= 1", path=path)
    if version > FORMAT_VERSION:
        raise XanesnetError(f"model format {version} is newer than this xanesnet supports ({FORMAT_VERSION}); upgrade xanesnet", path=path)
    if CHECKSUM_KEY in config and config[CHECKSUM_KEY] != model_checksum(config):
        raise XanesnetError(f"corrupted or edited model: config.json does not match its model checksum ({CHECKSUM_KEY})", path=path)
    if _sha256(w_path) != config["weights_sha256"]:
        raise XanesnetError("corrupted model: weights.pt does not match the checksum in config.json", path=path)
    return config, {"members": _load_weights(w_path, path)}


def build_members(path: Path, config: dict[str, Any], state: dict[str, Any], *, n_in: int, n_out: int) -> list:
    """The member networks of ``config["model"]`` with the weights of ``state``, in evaluation mode."""
    import torch

    from xanesnet.models import model_from_state

    try:
        members = []
        for sd in state["members"]:
            sd = {k: v.float() if v.dtype == torch.float16 else v for k, v in sd.items()}  # float16 storage
            members.append(model_from_state(config["model"], sd, n_in=n_in, n_out=n_out))
    except XanesnetError as exc:
        raise XanesnetError(f"corrupted model: config.json: model: {exc.message}", path=path) from None
    except (RuntimeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise XanesnetError(f"corrupted model: weights do not fit the saved architecture ({str(exc).splitlines()[0][:200]})",
                            path=path) from None
    if not members:
        raise XanesnetError("corrupted model: no networks in weights.pt", path=path)
    return members


#: The most features and energy points a model may have.
MAX_FEATURES, MAX_ENERGIES = 100_000, 100_000


def check_config(config: dict[str, Any]) -> None:
    """Check every value predict uses: types, lengths and finite, positive statistics (one-line :class:`XanesnetError`).

    The descriptor's settings are bounded before its feature names are built,
    and the names are compared with the saved ones only after their count.
    """
    from xanesnet.descriptors import descriptor_from_dict

    energy = _numbers(config, "energy", min_len=1, max_len=MAX_ENERGIES)
    if np.any(np.diff(energy) <= 0):
        raise XanesnetError("energy must be strictly increasing")
    names = config["feature_names"]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_FEATURES or not all(isinstance(n, str) for n in names):
        raise XanesnetError(f"feature_names must be a list of 1 to {MAX_FEATURES:,} strings")
    n_feat, n_energy = len(names), len(energy)
    for key in ("descriptor", "model"):
        if not isinstance(config[key], dict):
            raise XanesnetError(f"{key} must be a JSON object")
    if config["descriptor"]:
        try:
            descriptor = descriptor_from_dict(config["descriptor"])
        except XanesnetError as exc:
            raise XanesnetError(f"descriptor: {exc.message}") from None
        if descriptor.n_features != n_feat or descriptor.feature_names != names:
            raise XanesnetError("mismatched model: its descriptor settings no longer give the features it was trained on")
    _check_scaler(config["x_scaler"], "x_scaler", n_feat)
    from xanesnet.transforms import TARGET_TRANSFORMS

    tf = config["y_transform"]
    if not isinstance(tf, dict) or not isinstance(tf.get("kind"), str) or tf["kind"] not in TARGET_TRANSFORMS:
        raise XanesnetError(f"y_transform must be a JSON object with kind {', '.join(TARGET_TRANSFORMS)}")
    if tf["kind"] == "softplus":
        width, w = tf.get("width"), tf.get("w")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in (width, w)) \
                or not width < 1:
            raise XanesnetError("y_transform: softplus needs a width in (0, 1) and a positive finite w")
        _check_scaler(tf.get("scaler"), "y_transform scaler", n_energy)
    elif tf["kind"] == "pca":
        k = tf.get("n_components")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_energy:
            raise XanesnetError(f"y_transform: n_components must be a whole number from 1 to {n_energy}")
        _check_scaler(tf.get("scaler"), "y_transform scaler", n_energy)
        _numbers(tf, "components", shape=(k, n_energy), label="y_transform components")
    else:
        _check_scaler(tf, "y_transform", n_energy)
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise XanesnetError(f"seed must be a whole number from 0 to 2^63 - 1 or null, not {str(seed)[:30]}")
    spectra = config.get("spectra")
    if spectra is not None:
        from xanesnet.spectra import ProcessSettings

        try:
            ProcessSettings.from_dict(spectra)
        except XanesnetError as exc:
            raise XanesnetError(f"spectra: {exc.message}") from None
    if "uncertainty" in config:
        _check_uncertainty(config["uncertainty"], n_energy)
    holdout = config.get("holdout")
    if holdout is not None and not (isinstance(holdout, dict) and isinstance(holdout.get("ids"), list)
                                    and all(isinstance(i, str) for i in holdout["ids"])):
        raise XanesnetError("holdout must be a JSON object with a list of ids")


def _numbers(data: Any, key: str, *, min_len: int = 0, max_len: int | None = None, shape: tuple[int, ...] | None = None,
             positive: bool = False, label: str | None = None) -> np.ndarray:
    """``data[key]`` as a finite float array (of ``shape``, or 1-D of ``min_len`` to ``max_len`` values)."""
    label = label or key
    value = data.get(key) if isinstance(data, dict) else None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        arr = None
    if arr is None or value is None or isinstance(value, (str, bool)) or arr.dtype != np.float64:
        raise XanesnetError(f"{label} must be a list of numbers")
    if shape is not None and arr.shape != shape:
        raise XanesnetError(f"{label} has shape {arr.shape}, expected {shape}")
    if shape is None and (arr.ndim != 1 or len(arr) < min_len or (max_len is not None and len(arr) > max_len)):
        raise XanesnetError(f"{label} must be a list of {min_len} to {max_len} numbers, has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise XanesnetError(f"{label} holds NaN or infinite values")
    if positive and not np.all(arr > 0):
        raise XanesnetError(f"{label} must be positive")
    return arr


def _check_scaler(state: Any, label: str, n: int) -> None:
    if not isinstance(state, dict):
        raise XanesnetError(f"{label} must be a JSON object")
    _numbers(state, "mean", shape=(n,), label=f"{label} mean")
    _numbers(state, "std", shape=(n,), positive=True, label=f"{label} std")
    if "min" in state or "max" in state:
        lo = _numbers(state, "min", shape=(n,), label=f"{label} min")
        hi = _numbers(state, "max", shape=(n,), label=f"{label} max")
        if np.any(lo > hi):
            raise XanesnetError(f"{label} min exceeds max")


def _check_uncertainty(unc: Any, n_energy: int) -> None:
    if not isinstance(unc, dict) or not isinstance(unc.get("calibration", {}), dict) or not isinstance(unc.get("trust", {}), dict):
        raise XanesnetError("uncertainty must be a JSON object with calibration and trust objects")
    calibration = unc.get("calibration", {})
    if calibration:
        _numbers(unc, "spread", shape=(n_energy,), positive=True, label="uncertainty spread")
    for mode, cal in calibration.items():
        scale = _numbers(cal, "scale", min_len=1, max_len=n_energy, positive=True, label=f"uncertainty calibration {mode} scale")
        if len(scale) not in (1, n_energy):
            raise XanesnetError(f"uncertainty calibration {mode} scale must have 1 or {n_energy} values")
        trust = unc.get("trust", {}).get(mode)
        threshold = trust.get("threshold") if isinstance(trust, dict) else None
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise XanesnetError(f"uncertainty trust {mode} threshold must be a finite number")


def _check_model_file(model: Path, p: Path, limit: int) -> None:
    if not p.exists() and not p.is_symlink():
        raise XanesnetError(f"not a model directory: {p.name} is missing", path=model)
    if p.is_symlink():
        raise XanesnetError(f"corrupted model: {p.name} is a symbolic link; a model directory holds its own files", path=model)
    info = p.stat()
    if not stat.S_ISREG(info.st_mode):
        raise XanesnetError(f"corrupted model: {p.name} is not a regular file", path=model)
    if info.st_size > limit:
        raise XanesnetError(f"corrupted model: {p.name} is {info.st_size / 2**20:.0f} MB, more than the "
                            f"{limit / 2**20:.0f} MB limit", path=model)


def _load_weights(w_path: Path, model: Path) -> list[dict]:
    """The members' state dicts from weights.pt: tensors only (``weights_only``), all finite."""
    import pickle

    import torch

    try:
        state = torch.load(w_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():
            raise XanesnetError(f"corrupted model: weights.pt is not a readable weights file ({type(exc).__name__})",
                                path=model) from None
        raise XanesnetError("corrupted model: weights.pt holds more than tensors (a pickled object); xanesnet loads "
                            "only tensors and never runs code from a model", path=model) from None
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise XanesnetError(f"corrupted model: weights.pt is not a readable weights file ({type(exc).__name__})", path=model) from None
    members = state.get("members") if isinstance(state, dict) else None
    if not isinstance(members, list) or not members:
        raise XanesnetError("corrupted model: no networks in weights.pt", path=model)
    for m, sd in enumerate(members):
        if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
            raise XanesnetError(f"corrupted model: member {m} of weights.pt is not a state dict of tensors", path=model)
        for name, tensor in sd.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise XanesnetError(f"corrupted model: member {m} weight {name} holds NaN or infinite values", path=model)
    return members


def _stored(state: dict[str, Any], dtype: str) -> dict[str, Any]:
    import torch

    if dtype == "float32":
        return state
    return {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}


def _n_outputs(config: dict[str, Any]) -> int:
    tf = config["y_transform"]
    return int(tf["n_components"]) if tf.get("kind") == "pca" else len(config["energy"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
