"""Descriptors: structure + absorber -> fixed-length vector. One registry, :data:`DESCRIPTORS`."""

from __future__ import annotations

from typing import Any

from xanesnet.descriptors.base import Descriptor
from xanesnet.descriptors.element import AbsorberElement
from xanesnet.descriptors.environment import Environment
from xanesnet.descriptors.wacsf import PRESETS, WACSF
from xanesnet.errors import XanesnetError

#: Descriptor kind -> class. Register a new descriptor here and nowhere else.
DESCRIPTORS: dict[str, type[Descriptor]] = {WACSF.kind: WACSF, AbsorberElement.kind: AbsorberElement,
                                            Environment.kind: Environment}


#: Input kind -> the descriptor a model of that kind gets unless told otherwise.
DEFAULT_DESCRIPTORS: dict[str, Any] = {"vector": lambda: PRESETS["default"], "graph": Environment}


def descriptor_from_dict(settings: dict[str, Any] | Descriptor, *, source: Any = None) -> Descriptor:
    """Rebuild a descriptor from :meth:`Descriptor.to_dict` output (a descriptor is returned as it is)."""
    if isinstance(settings, Descriptor):
        return settings
    if not isinstance(settings, dict):
        raise XanesnetError(f"descriptor settings must be a JSON object, not {type(settings).__name__}", path=source)
    kind = settings.get("kind", WACSF.kind)
    if not isinstance(kind, str) or kind not in DESCRIPTORS:
        raise XanesnetError(f"unknown descriptor kind {kind!r}; known: {', '.join(DESCRIPTORS)}", path=source)
    return DESCRIPTORS[kind].from_dict(settings, source=source)


def default_descriptor(input_kind: str = "vector") -> Descriptor:
    """The default descriptor for models that take ``input_kind`` inputs."""
    if input_kind not in DEFAULT_DESCRIPTORS:
        raise XanesnetError(f"no descriptor gives {input_kind} inputs; known: {', '.join(DEFAULT_DESCRIPTORS)}")
    return DEFAULT_DESCRIPTORS[input_kind]()


def preset(name: str) -> Descriptor:
    """A named descriptor setting (see :data:`xanesnet.descriptors.wacsf.PRESETS`)."""
    if name not in PRESETS:
        raise XanesnetError(f"unknown descriptor preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["DESCRIPTORS", "AbsorberElement", "Descriptor", "Environment", "WACSF", "PRESETS", "default_descriptor",
           "descriptor_from_dict", "preset"]
