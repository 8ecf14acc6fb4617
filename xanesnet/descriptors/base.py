"""What every descriptor provides: a fixed-length vector for one absorbing atom."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import logging
import os
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure, resolve_absorber

logger = logging.getLogger(__name__)


class Descriptor(ABC):
    """Base class: subclasses are frozen dataclasses whose fields are their settings.

    The fields *are* the saved configuration: :meth:`to_dict` writes them and
    :meth:`from_dict` rebuilds an identical descriptor, rejecting unknown keys.
    """

    #: Registry name, set by each subclass.
    kind: str = ""
    #: Bumped whenever the code changes the numbers; part of the feature-cache key.
    revision: int = 1
    #: What the rows are to a model: ``vector`` (one feature vector) or another input kind a model
    #: declares it takes (e.g. ``graph``: atoms and distances of the absorber's environment, packed in a row).
    input_kind: str = "vector"
    #: Feature scaling a model sees: standardised per column, or the raw values (graphs keep their distances).
    standardize: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.create is Descriptor.create and cls.create_batch is Descriptor.create_batch:
            raise TypeError(f"{cls.__name__} must implement create or create_batch")

    def create(self, structure: Structure, absorber: int) -> np.ndarray:
        """Descriptor vector (``n_features``,) of atom ``absorber`` (0-based index)."""
        x, errors = self.create_batch([structure], [absorber])
        if errors[0] is not None:
            raise errors[0]
        return x[0]

    def create_batch(self, structures: Sequence[Structure], absorbers: Sequence[int]
                     ) -> tuple[np.ndarray, list[XanesnetError | None]]:
        """Vectors (n, ``n_features``) of atom ``absorbers[i]`` (0-based) of each structure, computed together.

        A structure the descriptor cannot describe (e.g. no neighbour within
        the cutoff) gets a row of NaN and its error in the returned list
        (``None`` for the good ones), so one bad molecule does not stop a batch.
        This default calls :meth:`create` one molecule at a time; descriptors
        that can vectorise over molecules override it.
        """
        out = np.full((len(structures), self.n_features), np.nan)
        errors: list[XanesnetError | None] = [None] * len(structures)
        for i, (s, a) in enumerate(zip(structures, absorbers)):
            try:
                out[i] = self.create(s, a)
            except XanesnetError as exc:
                errors[i] = exc
        return out, errors

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """One name per vector element, in order."""

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def feature_groups(self) -> dict[str, list[int]]:
        """Named groups of feature columns that are permuted together in importance (default: one per feature)."""
        return {name: [i] for i, name in enumerate(self.feature_names)}

    def radial_channels(self) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
        """Features that are radial functions of the distance from the absorber, for importance by distance:
        family (as in :meth:`feature_groups`) -> channel -> (columns, centre of each in Angstrom). Default: none."""
        return {}

    def featurize(self, structures: Sequence[Structure], *, absorber: int | str | None = None,
                  progress: bool = False, batch_size: int = 1024) -> np.ndarray:
        """Stack the vectors of many structures into an array (n_structures, n_features); the first bad one raises."""
        from tqdm.auto import tqdm

        out = np.empty((len(structures), self.n_features))
        with tqdm(total=len(structures), desc="featurize", unit="mol", disable=not progress, leave=False) as bar:
            for start in range(0, len(structures), batch_size):
                batch = structures[start:start + batch_size]
                x, errors = self.create_batch(batch, [resolve_absorber(s, absorber) for s in batch])
                first_error = next((e for e in errors if e is not None), None)
                if first_error is not None:
                    raise first_error
                out[start:start + len(batch)] = x
                bar.update(len(batch))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"kind": self.kind, **json.loads(json.dumps(d))}

    @classmethod
    def from_dict(cls, settings: dict[str, Any], *, source: str | os.PathLike | None = None) -> "Descriptor":
        from xanesnet.settings import check_keys

        check_keys(settings, ["kind"] + [f.name for f in dataclasses.fields(cls)], f"{cls.kind} descriptor", source)  # type: ignore[arg-type]
        settings = dict(settings)
        settings.pop("kind", None)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in settings:
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                _check_type(cls.kind, f.name, settings[f.name], default)
        return cls(**{k: _as_tuple(v) for k, v in settings.items()})

    def settings_hash(self) -> str:
        """Stable hash of the settings and code revision: the key under which features are cached."""
        blob = json.dumps({**self.to_dict(), "revision": self.revision}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


#: The longest list a descriptor setting may hold.
MAX_LIST = 64


def _check_type(kind: str, name: str, value: Any, default: Any) -> None:
    """Refuse a setting whose JSON type differs from its default's (``None`` defaults take a whole number)."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif default is None or isinstance(default, int):
        ok = (value is None and default is None) or (isinstance(value, int) and not isinstance(value, bool))
        what = "a whole number" + (" or null" if default is None else "")
    elif isinstance(default, float):
        ok, what = number(value), "a finite number"
    elif isinstance(default, dict):
        ok, what = isinstance(value, dict), "a JSON object"
    elif isinstance(default, tuple):  # strings where the default holds strings or nothing (element groups), else numbers
        item, what = ((lambda v: isinstance(v, str)), "strings") if not default or isinstance(default[0], str) else (number, "numbers")
        ok = isinstance(value, (list, tuple)) and len(value) <= MAX_LIST and all(item(v) for v in value)
        what = f"a list of at most {MAX_LIST} {what}"
    else:
        ok, what = True, ""
    if not ok:
        raise XanesnetError(f"{kind} setting {name} must be {what}, not {str(value)[:40]!r}")


def _as_tuple(value: Any) -> Any:
    """JSON lists back to the tuples frozen dataclasses hold."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
