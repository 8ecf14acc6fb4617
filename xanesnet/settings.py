"""The one base for settings dataclasses: JSON dict in and out, unknown keys rejected with the valid ones.

Every settings class of the package (training, model kinds, spectra
processing, uncertainty, provenance, FEFF, descriptors) reads its JSON form
through :func:`check_keys`, so a misspelt key anywhere is the same one-line
error naming the key and the valid ones.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, ClassVar, Mapping

from xanesnet.errors import XanesnetError


def check_keys(data: Any, valid: list[str], section: str, source: str | os.PathLike | None = None) -> None:
    """Refuse a non-object or unknown keys with one line naming them and the valid ones."""
    if not isinstance(data, Mapping):
        raise XanesnetError(f"{section} settings must be a JSON object, not {type(data).__name__}", path=source)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise XanesnetError(f"unknown {section} setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}",
                            path=source)


class Settings:
    """Base of the settings dataclasses (frozen or not): their fields are their JSON form.

    Subclasses set ``section`` (the name used in error messages) and may
    override :meth:`_from_json` to build nested settings from their JSON value;
    by default a field annotated with a :class:`Settings` subclass is built
    from its JSON object with that class's :meth:`from_dict`.
    """

    section: ClassVar[str] = "settings"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (nested settings as dicts, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | "Settings", *, source: str | os.PathLike | None = None):
        """Build from a JSON dict; unknown or missing keys fail naming the valid ones."""
        if isinstance(data, cls):
            return data
        fields = dataclasses.fields(cls)
        check_keys(data, [f.name for f in fields], cls.section, source)
        required = [f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise XanesnetError(f"{cls.section} settings miss {', '.join(map(repr, missing))}", path=source)
        return cls(**{k: cls._from_json(k, v, source) for k, v in data.items()})

    @classmethod
    def _from_json(cls, name: str, value: Any, source: str | os.PathLike | None) -> Any:
        nested = _settings_type(cls, name)
        if nested is not None and isinstance(value, Mapping):
            return nested.from_dict(value, source=source)
        return tuple(value) if isinstance(value, list) else value


def _settings_type(cls: type, name: str) -> type[Settings] | None:
    """The :class:`Settings` subclass field ``name`` of ``cls`` is annotated with (``X`` or ``X | None``), if any."""
    import typing

    hint = typing.get_type_hints(cls).get(name)
    for t in (hint, *typing.get_args(hint)):
        if isinstance(t, type) and issubclass(t, Settings):
            return t
    return None


def number(section: str, name: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
           optional: bool = False, maximum: float | None = None) -> float | None:
    """``value`` as a finite float (at most ``maximum`` in size), or a one-line error naming the setting."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise XanesnetError(f"{section}: {name} must be a finite number{' or null' if optional else ''}, not {value!r}")
    if positive and value <= 0:
        raise XanesnetError(f"{section}: {name} must be positive, not {value!r}")
    if nonnegative and value < 0:
        raise XanesnetError(f"{section}: {name} must not be negative, not {value!r}")
    if maximum is not None and abs(value) > maximum:
        raise XanesnetError(f"{section}: {name} must be at most {maximum:g} in size, not {value!r}")
    return float(value)


def choice(section: str, name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise XanesnetError(f"{section}: {name} must be one of {', '.join(map(repr, options))}, not {value!r}")
    return value


def pair(section: str, name: str, value: Any, *, optional: bool = False) -> tuple[float, float] | None:
    """An increasing (low, high) pair of numbers (eV)."""
    if value is None and optional:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise XanesnetError(f"{section}: {name} must be a [low, high] pair, not {value!r}")
    lo, hi = (number(section, name, v) for v in value)
    if not lo < hi:
        raise XanesnetError(f"{section}: {name} must be [low, high] with low < high, not {list(value)!r}")
    return lo, hi


def set_fields(obj: Settings, **values: Any) -> None:
    """Store normalised field values on a frozen dataclass (from ``__post_init__``)."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)
