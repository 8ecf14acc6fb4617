"""Fitted, invertible transforms of inputs and targets (numpy only; saved as JSON lists).

The network sees standardised descriptors and transformed spectra; predict
inverts the target transform. Registry: :data:`TARGET_TRANSFORMS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xanesnet.errors import XanesnetError


class Standardizer:
    """Per-column ``(v - mean) / std``; constant columns get ``std = 1``.

    It also keeps the range each column spanned in the fitted data
    (``min_``, ``max_``), so a new sample can be checked against it (see
    :func:`xanesnet.uncertainty.out_of_range`); scalers saved before the
    range was kept load with ``None`` there.
    """

    kind = "standardize"

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.min_: np.ndarray | None = None
        self.max_: np.ndarray | None = None

    def fit(self, v: np.ndarray) -> "Standardizer":
        self.mean_ = v.mean(axis=0)
        std = v.std(axis=0)
        self.std_ = np.where(std > 1e-12 * max(1.0, float(np.abs(self.mean_).max(initial=0.0))), std, 1.0)
        self.min_, self.max_ = v.min(axis=0), v.max(axis=0)
        return self

    def transform(self, v: np.ndarray) -> np.ndarray:
        return (v - self.mean_) / self.std_

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return z * self.std_ + self.mean_

    def inverse_variance(self, var: np.ndarray) -> np.ndarray:
        """Variance in the original space of independent errors with variance ``var`` in transformed space."""
        return var * self.std_**2

    def state(self) -> dict[str, Any]:
        state = {"kind": self.kind, "mean": self.mean_.tolist(), "std": self.std_.tolist()}
        if self.min_ is not None:
            state.update(min=self.min_.tolist(), max=self.max_.tolist())
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Standardizer":
        obj = cls()
        obj.mean_, obj.std_ = np.asarray(state["mean"], float), np.asarray(state["std"], float)
        if "min" in state:
            obj.min_, obj.max_ = np.asarray(state["min"], float), np.asarray(state["max"], float)
        return obj


class Identity(Standardizer):
    """No transform (mean 0, std 1)."""

    kind = "none"

    def fit(self, v: np.ndarray) -> "Identity":
        self.mean_, self.std_ = np.zeros(v.shape[1]), np.ones(v.shape[1])
        self.min_ = self.max_ = None
        return self


class PCA:
    """Standardise per point, then keep the leading ``n_components`` principal components."""

    kind = "pca"

    def __init__(self, n_components: int = 30) -> None:
        self.n_components = n_components
        self.scaler_ = Standardizer()
        self.components_: np.ndarray | None = None

    def fit(self, v: np.ndarray) -> "PCA":
        z = self.scaler_.fit(v).transform(v)
        if not 1 <= self.n_components <= min(z.shape):
            raise XanesnetError(f"pca:{self.n_components} needs 1 <= K <= {min(z.shape)}")
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        self.components_ = vt[: self.n_components]
        return self

    def transform(self, v: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(v) @ self.components_.T

    def inverse_transform(self, c: np.ndarray) -> np.ndarray:
        return self.scaler_.inverse_transform(c @ self.components_)

    def inverse_variance(self, var: np.ndarray) -> np.ndarray:
        return self.scaler_.inverse_variance(var @ self.components_**2)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_components": self.n_components, "scaler": self.scaler_.state(),
                "components": self.components_.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "PCA":
        obj = cls(int(state["n_components"]))
        obj.scaler_ = Standardizer.from_state(state["scaler"])
        obj.components_ = np.asarray(state["components"], float)
        return obj


#: Target transform kind -> class.
TARGET_TRANSFORMS: dict[str, type] = {Standardizer.kind: Standardizer, Identity.kind: Identity, PCA.kind: PCA}


def target_transform(spec: str):
    """A fresh transform from a spec: ``standardize``, ``none`` or ``pca:K``."""
    kind, _, arg = spec.partition(":")
    if kind not in TARGET_TRANSFORMS:
        raise XanesnetError(f"unknown target transform {spec!r}; known: standardize, none, pca:K")
    if kind == PCA.kind:
        try:
            return PCA(int(arg or 30))
        except ValueError:
            raise XanesnetError(f"pca needs a whole number of components, e.g. pca:30, got {spec!r}") from None
    if arg:
        raise XanesnetError(f"target transform {kind!r} takes no argument, got {spec!r}")
    return TARGET_TRANSFORMS[kind]()


def transform_from_state(state: dict[str, Any]):
    kind = state.get("kind")
    if kind not in TARGET_TRANSFORMS:
        raise XanesnetError(f"unknown saved transform {kind!r}")
    return TARGET_TRANSFORMS[kind].from_state(state)
