"""What every descriptor provides: a fixed-length vector for one absorbing atom."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
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

    @abstractmethod
    def create(self, structure: Structure, absorber: int) -> np.ndarray:
        """Descriptor vector (``n_features``,) of atom ``absorber`` (0-based index)."""

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """One name per vector element, in order."""

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def featurize(self, structures: Sequence[Structure], *, absorber: int | str | None = None,
                  progress: bool = False) -> np.ndarray:
        """Stack the vectors of many structures into an array (n_structures, n_features)."""
        from tqdm.auto import tqdm

        out = np.empty((len(structures), self.n_features))
        for i, s in enumerate(tqdm(structures, desc="featurize", unit="mol", disable=not progress, leave=False)):
            out[i] = self.create(s, resolve_absorber(s, absorber))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"kind": self.kind, **json.loads(json.dumps(d))}

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "Descriptor":
        settings = dict(settings)
        settings.pop("kind", None)
        valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise XanesnetError(f"unknown {cls.kind} setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
        return cls(**{k: _as_tuple(v) for k, v in settings.items()})

    def settings_hash(self) -> str:
        """Stable hash of the settings and code revision: the key under which features are cached."""
        blob = json.dumps({**self.to_dict(), "revision": self.revision}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _as_tuple(value: Any) -> Any:
    """JSON lists back to the tuples frozen dataclasses hold."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
