"""Torch modules that map a descriptor vector to a spectrum. One registry, :data:`MODELS`.

Torch is imported here, so nothing on the featurisation path imports this package.
"""

from __future__ import annotations

from typing import Any

from xanesnet.errors import XanesnetError
from xanesnet.models.gpr import GPR
from xanesnet.models.mlp import MLP

#: Model kind -> torch module class. Register a new model here and nowhere else.
#: A module with ``fit_exact(x, y, seed=)`` is fitted in closed form instead of
#: by gradient descent; one with ``forward_with_var(x)`` gives its own variance.
MODELS: dict[str, type] = {MLP.kind: MLP, GPR.kind: GPR}


def build_model(settings: dict[str, Any], *, n_in: int, n_out: int):
    """A fresh module from its saved settings (``{"kind": ..., **constructor kwargs}``)."""
    settings = dict(settings)
    kind = settings.pop("kind", MLP.kind)
    if kind not in MODELS:
        raise XanesnetError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")
    return MODELS[kind](n_in=n_in, n_out=n_out, **settings)


__all__ = ["MODELS", "MLP", "GPR", "build_model"]
