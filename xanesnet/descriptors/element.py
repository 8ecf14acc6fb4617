"""The absorbing element as an input: another descriptor's vector followed by a one-hot of the absorber's element.

This lets one network serve several absorbing elements (the universal Ti-Zn
FEFF model): the wrapped descriptor is the same for every absorber, and the
one-hot tells the network which element absorbs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import numpy as np
from ase.data import chemical_symbols

from xanesnet.descriptors.base import Descriptor
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import FIRST_ROW_TM, Structure


@dataclass(frozen=True)
class AbsorberElement(Descriptor):
    """``inner`` descriptor of the absorber, then one column per element of ``elements`` (1 for the absorber's).

    Parameters
    ----------
    inner
        Settings of the wrapped descriptor (``Descriptor.to_dict()``); it must
        not depend on the absorber's own element.
    elements
        The absorbing elements the one-hot can name (default Ti-Zn). Any
        other absorber is refused: a network never saw its column set.
    """

    kind = "absorber_element"

    inner: dict = field(default_factory=lambda: {"kind": "wacsf"})
    elements: tuple[str, ...] = tuple(FIRST_ROW_TM)

    def __post_init__(self) -> None:
        if self.inner.get("kind") == self.kind:
            raise XanesnetError("absorber_element: the inner descriptor cannot itself be absorber_element")
        if not self.elements or len(set(self.elements)) != len(self.elements):
            raise XanesnetError(f"absorber_element: elements must be distinct and not empty, got {list(self.elements)}")

    @cached_property
    def _inner(self) -> Descriptor:
        from xanesnet.descriptors import descriptor_from_dict

        return descriptor_from_dict(self.inner)

    @property
    def feature_names(self) -> list[str]:
        return self._inner.feature_names + [f"absorber={el}" for el in self.elements]

    def create_batch(self, structures: Sequence[Structure], absorbers: Sequence[int]
                     ) -> tuple[np.ndarray, list[XanesnetError | None]]:
        """The inner descriptor's batch (vectorised over the molecules, if it is), then the one-hot columns."""
        inner, errors = self._inner.create_batch(structures, absorbers)
        out = np.concatenate([inner, np.zeros((len(structures), len(self.elements)))], axis=1)
        for i, (s, a) in enumerate(zip(structures, absorbers)):
            element = chemical_symbols[s.numbers[a]]
            if element in self.elements:
                out[i, inner.shape[1] + self.elements.index(element)] = np.nan if errors[i] else 1.0
            else:
                out[i] = np.nan
                errors[i] = XanesnetError(f"absorber {element} (atom {a}) is not one of the elements this descriptor "
                                          f"knows: {', '.join(self.elements)}", path=s.source)
        return out, errors

    def settings_hash(self) -> str:
        return super().settings_hash() + self._inner.settings_hash()[:4]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "inner": dict(self.inner), "elements": list(self.elements)}
