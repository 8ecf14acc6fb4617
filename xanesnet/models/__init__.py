"""Model kinds: torch modules behind one contract (:class:`~xanesnet.models.base.Model`). One registry, :data:`MODELS`.

The registry names each kind's class by import path, so listing the kinds
(the CLI's ``--model`` choices) imports nothing; torch loads with the first
model class asked for (:func:`model_class`).
"""

from __future__ import annotations

import importlib
from typing import Any

from xanesnet.errors import XanesnetError

#: Model kind -> "module:Class" of its model (a :class:`~xanesnet.models.base.Model` whose ``Settings``
#: say which inputs it takes). Register a new model here and nowhere else.
MODELS: dict[str, str] = {
    "mlp": "xanesnet.models.mlp:MLP",
    "gpr": "xanesnet.models.gpr:GPR",
    "gnn": "xanesnet.models.gnn:GNN",
}


def model_class(kind: str):
    """The model class registered as ``kind``."""
    if kind not in MODELS:
        raise XanesnetError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")
    module, _, name = MODELS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def model_settings(data: Any, *, source: Any = None):
    """The typed settings of a model kind from their JSON form (``{"kind": ..., ...}``; default kind ``mlp``)."""
    from xanesnet.models.base import ModelSettings

    if isinstance(data, ModelSettings):
        return data
    if not isinstance(data, dict):
        raise XanesnetError(f"model settings must be a JSON object, not {type(data).__name__}", path=source)
    kind = data.get("kind", "mlp")
    if kind not in MODELS:
        raise XanesnetError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}", path=source)
    return model_class(kind).Settings.from_dict({"kind": kind, **data}, source=source)


def build_model(settings: Any, *, n_in: int, n_out: int):
    """A fresh model from its settings (typed, or their JSON form)."""
    settings = model_settings(settings)
    return model_class(settings.kind)(settings, n_in=n_in, n_out=n_out)


def model_from_state(settings: Any, state: dict, *, n_in: int, n_out: int):
    """A saved model rebuilt from its settings and state dict."""
    settings = model_settings(settings)
    return model_class(settings.kind).from_state(settings, state, n_in=n_in, n_out=n_out)


__all__ = ["MODELS", "build_model", "model_class", "model_from_state", "model_settings"]
