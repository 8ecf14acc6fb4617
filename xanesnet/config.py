"""Settings of a training run: one tree of dataclasses with every default in one place.

A JSON config file (``xanesnet train --config FILE``) has the sections of
:class:`Config`: ``descriptor``, ``model``, ``training``, ``spectra``,
``uncertainty``, ``provenance`` and ``seed``. Every section is read by the one
generic :meth:`~xanesnet.settings.Settings.from_dict`, so a misspelt key at any
level is one line naming it and the valid ones, before any file is read or
featurised. CLI flags only override fields. ``Config.to_dict()`` is the JSON
form and ``Config.from_dict`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from xanesnet.errors import XanesnetError
from xanesnet.settings import Settings, choice, set_fields

CALIBRATIONS = ("scalar", "energy")
#: The small-data rules of :meth:`TrainingSettings.for_size`, chosen on validation by ``scripts/small_data_rules.py``.
SMALL_DATA_BATCH_DIVISOR = 1
SMALL_DATA_PATIENCE_FLOOR = 50


@dataclass
class TrainingSettings(Settings):
    """How the networks are fitted.

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

    section: ClassVar[str] = "training"

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
        self.validate()

    def validate(self) -> "TrainingSettings":
        """Check the values (again, after CLI flags changed fields); returns ``self``."""
        sizes = (self.epochs, self.ensemble, *(v for v in (self.batch_size, self.patience, self.threads) if v is not None))
        if min(sizes) < 1:
            raise XanesnetError("training: epochs, batch_size, ensemble, patience and threads must be at least 1")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 0.5:
            raise XanesnetError(f"training: val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.lr <= 0:
            raise XanesnetError(f"training: lr must be positive, got {self.lr}")
        choice("training", "calibration", self.calibration, CALIBRATIONS)
        return self

    def for_size(self, n: int) -> "TrainingSettings":
        """These settings for ``n`` training spectra: what was left ``None`` follows the data-size rules.

        - ``val_fraction``: 10%, raised (to at most 25%) so that at least 10
          spectra early-stop and calibrate (fewer warn: the error bars rest on them);
        - ``batch_size``: n / ``SMALL_DATA_BATCH_DIVISOR`` rounded down to a
          power of two, between 16 and 64;
        - ``patience``: n/10 epochs, between ``SMALL_DATA_PATIENCE_FLOOR`` and 50;
        - ``threads``: 1 below 2,000 spectra (small batches gain nothing from a
          second thread, and a busy machine makes it spin), else torch's default.

        The divisor (1) and the floor (50) were chosen among 1-2 and 20-50 on
        validation data (``scripts/small_data_rules.py``,
        ``docs/small_data_rules.json``): with them the batch size is 64 and the
        patience 50 from 64 spectra up, the former fixed defaults, and the
        speed-up on small sets comes from the single thread.
        """
        import math

        rules = {
            "val_fraction": min(0.25, max(0.1, 10 / max(n, 1))),
            "batch_size": int(min(64, max(16, 2 ** math.floor(math.log2(max(n, 2) / SMALL_DATA_BATCH_DIVISOR))))),
            "patience": int(min(50, max(SMALL_DATA_PATIENCE_FLOOR, n // 10))),
            "threads": 1 if n < 2000 else None,
        }
        return dataclasses.replace(self, **{k: v for k, v in rules.items() if getattr(self, k) is None})


@dataclass
class UncertaintySettings(Settings):
    """How error bars and the trust flag are made.

    Parameters
    ----------
    mc_samples
        Dropout masks drawn per member for Monte-Carlo dropout (a single
        member with dropout), in calibration and in prediction.
    trust_quantile
        Validation-score quantile above which a prediction is not trusted.
    """

    section: ClassVar[str] = "uncertainty"

    mc_samples: int = 20
    trust_quantile: float = 0.95

    def __post_init__(self) -> None:
        if self.mc_samples < 1:
            raise XanesnetError(f"uncertainty: mc_samples must be at least 1, got {self.mc_samples}")
        if not 0.0 < self.trust_quantile <= 1.0:
            raise XanesnetError(f"uncertainty: trust_quantile must be in (0, 1], got {self.trust_quantile}")


@dataclass
class Provenance(Settings):
    """What the model predicts and what it was trained on, saved with it (``None``: not stated)."""

    section: ClassVar[str] = "provenance"

    element: str | None = None
    edge: str | None = None
    spectrum: str | None = None
    reference: str | None = None


def model_settings(data: Any, *, source: str | os.PathLike | None = None):
    """The typed settings of a model kind (see :func:`xanesnet.models.model_settings`)."""
    from xanesnet.models import model_settings as build

    return build(data, source=source)


def descriptor_settings(data: Any, *, model: Any = None, source: str | os.PathLike | None = None):
    """A descriptor from a preset name, its JSON form or itself; ``None`` (or ``{}``) for prebuilt features.

    ``"default"`` is the default descriptor of the model's input kind.
    """
    from xanesnet.descriptors import Descriptor, default_descriptor, descriptor_from_dict, preset

    if data is None or isinstance(data, Descriptor):
        return data
    if isinstance(data, str):
        return default_descriptor(model.input_kind if model is not None else "vector") if data == "default" else preset(data)
    if isinstance(data, dict):
        return descriptor_from_dict(data, source=source) if data else None
    raise XanesnetError(f"descriptor settings must be a preset name or a JSON object, not {type(data).__name__}", path=source)


@dataclass
class Config(Settings):
    """Everything ``xanesnet train`` needs besides the data; saved inside the model.

    ``descriptor`` may be given as a preset name (``"default"``: the default of
    the model's input kind), its JSON form or a descriptor; ``None`` when the
    inputs are prebuilt features. ``model`` and ``spectra`` may be given as
    their JSON form; they are turned into their typed settings on construction.
    """

    section: ClassVar[str] = "config"

    descriptor: Any = "default"
    model: Any = field(default_factory=lambda: {"kind": "mlp"})
    training: TrainingSettings = field(default_factory=TrainingSettings)
    spectra: Any = None
    uncertainty: UncertaintySettings = field(default_factory=UncertaintySettings)
    provenance: Provenance = field(default_factory=Provenance)
    seed: int | None = None

    def __post_init__(self) -> None:
        model = model_settings(self.model)
        set_fields(self, model=model, descriptor=descriptor_settings(self.descriptor, model=model),
                   spectra=self._spectra(self.spectra),
                   training=TrainingSettings.from_dict(self.training),
                   uncertainty=UncertaintySettings.from_dict(self.uncertainty),
                   provenance=Provenance.from_dict(self.provenance))
        if self.descriptor is not None and self.descriptor.input_kind != model.input_kind:
            raise XanesnetError(f"the {model.kind} model takes {model.input_kind} inputs; the {self.descriptor.kind} "
                                f"descriptor gives {self.descriptor.input_kind} inputs")

    @staticmethod
    def _spectra(value: Any, source: str | os.PathLike | None = None):
        if value is None or value == {}:
            return None
        from xanesnet.spectra import ProcessSettings

        return ProcessSettings.from_dict(value, source=source)

    @classmethod
    def _from_json(cls, name: str, value: Any, source: str | os.PathLike | None) -> Any:
        if name == "model":
            return model_settings(value, source=source)
        if name == "spectra":
            return cls._spectra(value, source)
        if name == "descriptor" and isinstance(value, dict) and value:
            return descriptor_settings(value, source=source)
        return super()._from_json(name, value, source)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["descriptor"] = {} if self.descriptor is None else out["descriptor"]
        return json.loads(json.dumps(out))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON form (via a temporary file and a rename)."""
        from xanesnet.atomic import write_json

        return write_json(path, self.to_dict())


def load_config(path: str | os.PathLike) -> Config:
    """Read and check a JSON config file; any problem is one :class:`XanesnetError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise XanesnetError("no such config file", path=path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise XanesnetError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=path) from None
    except UnicodeDecodeError:
        raise XanesnetError("not a text (JSON) file", path=path) from None
    if not isinstance(data, dict):
        raise XanesnetError("a config file must hold a JSON object", path=path)
    try:
        return Config.from_dict(data, source=path)
    except XanesnetError as exc:
        if exc.path is not None:
            raise
        raise XanesnetError(exc.message, path=path) from None
