"""Start training from a saved model's weights (``xanesnet train --init-from MODEL_DIR``): fine-tuning, transfer.

Only the network weights are taken. The scalers, the target transform, the
validation split and the calibration are fitted on the new data as in any
training run, so a fine-tuned model differs from one trained from scratch
only in where its weights start (with the same data and seed, and a
vanishing learning rate, it reproduces the source model). Member ``m`` of the
new ensemble starts from member ``m mod n`` of the source's ``n`` members:
the corresponding member when the counts agree, member 0 for all of them when
the source has one network.

The weights fit only the same inputs and outputs, so the descriptor settings,
the model settings (kind, layers, activation, dropout), the target transform
and the number of outputs must be the source's; a mismatch is one line naming
the model directory and what differs. The new model records where it started
(``init_from`` in its config: the source's name, weight checksum, training-data
hash, reference and, in turn, its own ``init_from``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xanesnet.errors import XanesnetError

logger = logging.getLogger(__name__)


@dataclass
class WarmStart:
    """The weights of a saved model and what they require of a training run."""

    path: Path
    config: dict[str, Any]
    members: list[dict[str, Any]]

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WarmStart":
        """Read a model directory (checked like any model: checksum, architecture) for its weights."""
        from xanesnet.bundle import load_bundle

        bundle = load_bundle(path)
        return cls(path=Path(path), config=bundle.config, members=[m.state_dict() for m in bundle.members])

    @property
    def target_transform(self) -> str:
        return self.config.get("training", {}).get("target_transform", "standardize")

    def adopt(self, config) -> None:
        """Give ``config`` the source's descriptor, model settings and target transform (what the weights need)."""
        from xanesnet.config import descriptor_settings, model_settings

        config.model = model_settings(self.config["model"])
        config.descriptor = descriptor_settings(self.config["descriptor"], model=config.model)
        config.training.target_transform = self.target_transform

    def check(self, config) -> None:
        """Refuse a training config whose network could not take these weights (before any data is read)."""
        from xanesnet.models import model_class

        kind = _json(config.model).get("kind", "mlp")
        if model_class(kind).closed_form:
            self._refuse([f"a {kind} model is fitted in closed form, not from starting weights"])
        diffs = _differences("descriptor", _json(config.descriptor), _json(self.config["descriptor"]))
        diffs += _differences("model", _canonical_model(config.model), _canonical_model(self.config["model"]))
        if config.training.target_transform != self.target_transform:
            diffs.append(f"target_transform {config.training.target_transform!r} here, {self.target_transform!r} in the model")
        self._refuse(diffs)

    def check_data(self, n_features: int, n_points: int) -> None:
        """Refuse data whose input or output size differs from the source's."""
        diffs = []
        n_in = len(self.config["feature_names"])
        if n_features != n_in:
            diffs.append(f"{n_features} input features here, {n_in} in the model")
        energy = np.asarray(self.config["energy"], float)
        if n_points != len(energy):
            diffs.append(f"{n_points} energy points here, {len(energy)} in the model "
                         f"({energy[0]:g}-{energy[-1]:g} eV)")
        self._refuse(diffs)

    def provenance(self, ensemble: int) -> dict[str, Any]:
        """What the new model's config records about its starting weights."""
        c = self.config
        return {"model": self.path.resolve().name, "weights_sha256": c.get("weights_sha256"),
                "training_data_sha256": c.get("training_data_sha256"), "n_train": c.get("n_train"),
                "reference": c.get("reference"), "members": [m % len(self.members) for m in range(ensemble)],
                "init_from": c.get("init_from")}

    def _refuse(self, diffs: list[str]) -> None:
        if diffs:
            raise XanesnetError(f"cannot start from this model's weights: {'; '.join(diffs)}", path=self.path)


def _json(value: Any) -> Any:
    """The JSON form of settings (a dict, or an object with ``to_dict``), lists for tuples."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value or {}))


def _canonical_model(settings: Any) -> dict[str, Any]:
    """Model settings with every default filled in, so ``{"kind": "mlp"}`` equals the saved full form."""
    from xanesnet.models import model_settings

    settings = _json(settings)
    try:
        return _json(model_settings(settings))
    except XanesnetError:  # unknown keys: compare as written
        return settings


def _differences(section: str, here: dict[str, Any], there: dict[str, Any]) -> list[str]:
    """``["<section> settings differ (key: a here, b in the model; ...)"]``, or ``[]``."""
    keys = [k for k in sorted(set(here) | set(there)) if here.get(k) != there.get(k)]
    if not keys:
        return []
    shown = "; ".join(f"{k}: {_short(here.get(k))} here, {_short(there.get(k))} in the model" for k in keys[:3])
    return [f"{section} settings differ ({shown}{f'; and {len(keys) - 3} more' if len(keys) > 3 else ''})"]


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
