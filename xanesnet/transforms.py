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


class RangeOnly(Standardizer):
    """Inputs passed on unscaled (graph rows keep their distances), with the training range kept for the range check."""

    kind = "range"

    def transform(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, float)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, float)


def input_scaler(standardize: bool) -> Standardizer:
    """The input scaler of a descriptor: standardised columns, or raw values with the range kept."""
    return Standardizer() if standardize else RangeOnly()


def input_scaler_from_state(state: dict[str, Any]) -> Standardizer:
    return (RangeOnly if state.get("kind") == RangeOnly.kind else Standardizer).from_state(state)


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


class Softplus:
    """A positive parametrisation: every predicted intensity is ``softplus`` of what the network gives, so it is > 0.

    ``transform`` standardises ``u = softplus_w^-1(y)`` per point, with
    ``softplus_w(u) = w log(1 + exp(u / w))`` and ``w = width * max |y|`` of the
    fitted spectra. Above a few ``w`` (a few per cent of the largest
    intensity) ``u`` equals ``y`` to within ``w e^(-y/w)``, so the network is fitted
    to the spectrum itself there; only near zero does ``u`` turn logarithmic.
    Intensities below ``1e-3 w`` (FEFF's tiny negative wiggles included) are
    raised to ``1e-3 w`` first, so ``u`` stays above ``-6.9 w``. The inverse,
    ``softplus_w`` of the de-standardised output, is positive for any network
    output, hence so are every ensemble member's spectrum and their mean; the
    error bar is still calibrated afterwards on those inverted spectra.
    """

    kind = "softplus"
    FLOOR = 1e-3

    def __init__(self, width: float = 0.01) -> None:
        if not 0.0 < width < 1.0:
            raise XanesnetError(f"softplus width must be in (0, 1) (a fraction of the largest intensity), got {width}")
        self.width = width
        self.w_: float | None = None
        self.scaler_ = Standardizer()

    def fit(self, v: np.ndarray) -> "Softplus":
        self.w_ = self.width * max(float(np.abs(v).max(initial=0.0)), 1e-12)
        self.scaler_.fit(self._inverse_softplus(v))
        return self

    def _inverse_softplus(self, y: np.ndarray) -> np.ndarray:
        y = np.maximum(y, self.FLOOR * self.w_)
        return y + self.w_ * np.log(-np.expm1(-y / self.w_))

    def transform(self, v: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(self._inverse_softplus(v))

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return self.w_ * np.logaddexp(0.0, self.scaler_.inverse_transform(z) / self.w_)

    def inverse_variance(self, var: np.ndarray) -> np.ndarray:
        """An upper bound: softplus has slope below 1, so it only shrinks errors."""
        return self.scaler_.inverse_variance(var)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "width": self.width, "w": self.w_, "scaler": self.scaler_.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Softplus":
        obj = cls(float(state["width"]))
        obj.w_ = float(state["w"])
        obj.scaler_ = Standardizer.from_state(state["scaler"])
        return obj


#: Target transform kind -> class.
TARGET_TRANSFORMS: dict[str, type] = {Standardizer.kind: Standardizer, Identity.kind: Identity, PCA.kind: PCA,
                                      Softplus.kind: Softplus}


def target_transform(spec: str):
    """A fresh transform from a spec: ``standardize``, ``none``, ``pca:K`` or ``softplus[:WIDTH]``."""
    kind, _, arg = spec.partition(":")
    if kind not in TARGET_TRANSFORMS:
        raise XanesnetError(f"unknown target transform {spec!r}; known: standardize, none, pca:K, softplus[:WIDTH]")
    if kind == Softplus.kind:
        try:
            return Softplus(float(arg)) if arg else Softplus()
        except ValueError:
            raise XanesnetError(f"softplus takes a width as a fraction of the largest intensity, e.g. softplus:0.01, "
                                f"got {spec!r}") from None
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
