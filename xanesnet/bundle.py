"""Save and load a model directory: ``config.json`` + ``weights.pt`` (state dicts only).

``config.json`` carries everything predict needs (descriptor settings, model
settings, scaler statistics, target transform, energy grid, feature names,
versions, seed, training-data hash, calibration); ``weights.pt`` holds one
state dict per ensemble member and is loaded with ``weights_only=True``. Its
SHA-256 is recorded in the config, so a corrupted or swapped file is refused.
Weights may be stored as float16 (``weights_dtype``; half the size): they are
widened to float32 on loading. Only float32 tensors are narrowed (float64
buffers such as a Gaussian process's stay as they are); whether the rounding
is harmless is checked by the caller (see
:func:`xanesnet.pipeline.float16_change`). Directories are written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
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
    """Write a model directory atomically; an existing directory is replaced only once the new one is complete.

    ``weights_dtype="float16"`` stores the float32 weights in half precision.
    """
    import torch

    if weights_dtype not in WEIGHT_DTYPES:
        raise XanesnetError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weights_dtype!r}")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is an ordinary one
    try:
        torch.save({"members": [_stored(m.state(), weights_dtype) for m in members]}, tmp / WEIGHTS_FILE)
        config = {
            **config,
            "weights_dtype": weights_dtype,
            "format_version": FORMAT_VERSION,
            "versions": {"xanesnet": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "weights_sha256": _sha256(tmp / WEIGHTS_FILE),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved model to %s", path)
    return path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Load and check a model directory; a missing, corrupted or mismatched one raises :class:`XanesnetError`."""
    from xanesnet.descriptors import descriptor_from_dict

    path = Path(path)
    config, state = read_model_dir(path, ("descriptor", "model", "energy", "x_scaler", "y_transform", "feature_names"))
    descriptor = descriptor_from_dict(config["descriptor"]) if config["descriptor"] else None  # None: precomputed features
    if descriptor is not None and descriptor.feature_names != config["feature_names"]:
        raise XanesnetError("mismatched model: its descriptor settings no longer give the features it was trained on", path=path)
    members = build_members(path, config, state, n_in=len(config["feature_names"]), n_out=_n_outputs(config))
    return Bundle(path=path, config=config, members=members)


def read_model_dir(path: Path, required: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config.json`` (checked for the ``required`` keys and format version) and the checksummed ``weights.pt``."""
    import torch

    if not path.is_dir():
        raise XanesnetError("no such model directory", path=path)
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise XanesnetError(f"not a model directory: {p.name} is missing", path=path)
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise XanesnetError(f"corrupted model: config.json is not valid JSON ({exc})", path=path) from None
    missing = [k for k in ("format_version", *required, "weights_sha256") if k not in config]
    if missing:
        raise XanesnetError(f"corrupted model: config.json lacks {', '.join(missing)}", path=path)
    if config["format_version"] > FORMAT_VERSION:
        raise XanesnetError(f"model format {config['format_version']} is newer than this xanesnet supports ({FORMAT_VERSION}); upgrade xanesnet", path=path)
    if _sha256(w_path) != config["weights_sha256"]:
        raise XanesnetError("corrupted model: weights.pt does not match the checksum in config.json", path=path)
    try:
        state = torch.load(w_path, map_location="cpu", weights_only=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise XanesnetError(f"corrupted model: weights.pt cannot be read ({str(exc).splitlines()[0]})", path=path) from None
    return config, state


def build_members(path: Path, config: dict[str, Any], state: dict[str, Any], *, n_in: int, n_out: int) -> list:
    """The member networks of ``config["model"]`` with the weights of ``state``, in evaluation mode."""
    import torch

    from xanesnet.models import model_from_state

    try:
        members = []
        for sd in state["members"]:
            sd = {k: v.float() if v.dtype == torch.float16 else v for k, v in sd.items()}  # float16 storage
            members.append(model_from_state(config["model"], sd, n_in=n_in, n_out=n_out))
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise XanesnetError(f"corrupted model: weights do not fit the saved architecture ({str(exc).splitlines()[0]})", path=path) from None
    if not members:
        raise XanesnetError("corrupted model: no networks in weights.pt", path=path)
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
