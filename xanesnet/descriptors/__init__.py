"""Descriptors: structure + absorber -> fixed-length vector. One registry, :data:`DESCRIPTORS`."""

from __future__ import annotations

from typing import Any

from xanesnet.descriptors.base import Descriptor
from xanesnet.descriptors.element import AbsorberElement
from xanesnet.descriptors.wacsf import PRESETS, WACSF
from xanesnet.errors import XanesnetError

#: Descriptor kind -> class. Register a new descriptor here and nowhere else.
DESCRIPTORS: dict[str, type[Descriptor]] = {WACSF.kind: WACSF, AbsorberElement.kind: AbsorberElement}


def descriptor_from_dict(settings: dict[str, Any]) -> Descriptor:
    """Rebuild a descriptor from :meth:`Descriptor.to_dict` output."""
    kind = settings.get("kind", WACSF.kind)
    if kind not in DESCRIPTORS:
        raise XanesnetError(f"unknown descriptor kind {kind!r}; known: {', '.join(DESCRIPTORS)}")
    return DESCRIPTORS[kind].from_dict(settings)


def preset(name: str) -> Descriptor:
    """A named descriptor setting (see :data:`xanesnet.descriptors.wacsf.PRESETS`)."""
    if name not in PRESETS:
        raise XanesnetError(f"unknown descriptor preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["DESCRIPTORS", "AbsorberElement", "Descriptor", "WACSF", "PRESETS", "descriptor_from_dict", "preset"]
