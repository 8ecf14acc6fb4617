"""Training settings: dataclasses with every default in one place.

A JSON config file (``xanesnet train --config FILE``) has the sections of
:class:`Config`; unknown keys fail with the list of valid ones, and CLI flags
only override fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xanesnet.errors import XanesnetError


@dataclass
class TrainingSettings:
    """How the network is fitted.

    Parameters
    ----------
    epochs
        Upper limit; early stopping usually ends sooner.
    batch_size, lr, weight_decay
        Adam mini-batch size, learning rate and (decoupled) weight decay.
        ``batch_size`` ``None`` scales with the data (:meth:`for_size`).
    val_fraction
        Share of the training data held out for early stopping and
        calibration; ``None`` scales with the data (:meth:`for_size`).
    patience
        Epochs without a better validation loss before stopping; the best
        weights are restored. ``None`` scales with the data (:meth:`for_size`).
    threads
        torch threads while training; ``None`` scales with the data
        (:meth:`for_size`).
    ensemble
        Number of members (member i is seeded with seed + i).
    bootstrap
        Resample each member's training set with replacement.
    target_transform
        ``standardize`` (per energy point), ``none``, ``pca:K`` (K principal
        components of the standardised spectra), or ``softplus[:WIDTH]``
        (predicted intensities positive by construction; see
        :class:`xanesnet.transforms.Softplus`).
    calibration
        How sigma is calibrated on the validation split: ``scalar`` or
        ``energy`` (a smooth factor per energy point).
    """

    epochs: int = 1000
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float | None = None
    patience: int | None = None
    ensemble: int = 5
    bootstrap: bool = False
    target_transform: str = "standardize"
    calibration: str = "scalar"
    threads: int | None = None

    def __post_init__(self) -> None:
        sizes = (self.epochs, self.ensemble, *(v for v in (self.batch_size, self.patience, self.threads) if v is not None))
        if min(sizes) < 1:
            raise XanesnetError("training: epochs, batch_size, ensemble, patience and threads must be at least 1")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 0.5:
            raise XanesnetError(f"training: val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.lr <= 0:
            raise XanesnetError(f"training: lr must be positive, got {self.lr}")


    def for_size(self, n: int) -> "TrainingSettings":
        """These settings for ``n`` training spectra: what was left ``None`` follows the data-size rules.

        - ``val_fraction``: 10%, raised (to at most 25%) so that at least 10
          spectra early-stop and calibrate (fewer warn: the error bars rest on them);
        - ``batch_size``: n/2 rounded down to a power of two, between 16 and
          64 (at least two steps an epoch: 32 for the 99-molecule sample);
        - ``patience``: n/10 epochs, between 20 and 50;
        - ``threads``: 1 below 2,000 spectra (small batches gain nothing from a
          second thread, and a busy machine makes it spin), else torch's default.

        From 500 spectra up (the 4,079-complex Fe set) the rules give the former
        fixed defaults: batch 64, patience 50, 10% validation.
        """
        import math

        rules = {
            "val_fraction": min(0.25, max(0.1, 10 / max(n, 1))),
            "batch_size": int(min(64, max(16, 2 ** math.floor(math.log2(max(n, 2) / 2))))),
            "patience": int(min(50, max(20, n // 10))),
            "threads": 1 if n < 2000 else None,
        }
        return dataclasses.replace(self, **{k: v for k, v in rules.items() if getattr(self, k) is None})


def default_model_settings() -> dict[str, Any]:
    return {"kind": "mlp", "hidden": [512, 512], "activation": "silu", "dropout": 0.1}


def default_descriptor_settings() -> dict[str, Any]:
    from xanesnet.descriptors import preset

    return preset("default").to_dict()


@dataclass
class Config:
    """Everything ``xanesnet train`` needs besides the data; saved inside the model."""

    descriptor: dict[str, Any] = field(default_factory=default_descriptor_settings)
    model: dict[str, Any] = field(default_factory=default_model_settings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    spectra: dict[str, Any] | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | os.PathLike | None = None) -> "Config":
        _reject_unknown(data, cls, "config", source)
        data = dict(data)
        if "training" in data:
            _reject_unknown(data["training"], TrainingSettings, "training", source)
            data["training"] = TrainingSettings(**data["training"])
        if isinstance(data.get("descriptor"), str):
            from xanesnet.descriptors import preset

            data["descriptor"] = preset(data["descriptor"]).to_dict()
        return cls(**data)


def load_config(path: str | os.PathLike) -> Config:
    path = Path(path)
    if not path.is_file():
        raise XanesnetError("no such config file", path=path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise XanesnetError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=path) from None
    if not isinstance(data, dict):
        raise XanesnetError("a config file must hold a JSON object", path=path)
    return Config.from_dict(data, source=path)


def _reject_unknown(data: Any, cls: type, section: str, source: str | os.PathLike | None) -> None:
    if not isinstance(data, dict):
        raise XanesnetError(f"{section} must be a JSON object", path=source)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise XanesnetError(f"unknown {section} key(s) {', '.join(unknown)}; valid: {', '.join(valid)}", path=source)
