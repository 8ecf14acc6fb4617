"""Gaussian-process regression baseline with predictive variance, as a torch module.

The kernel hyperparameters (signal variance, one RBF length scale, noise) are
fitted by scikit-learn's ``GaussianProcessRegressor`` on a subsample; the exact
posterior on all training points is then kept as buffers (training inputs,
weights ``alpha`` and the Cholesky factor), so the model saves and loads as a
state dict like every other model. Each output (a principal component or an
energy point of the transformed target) is standardised and shares the kernel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from xanesnet.models.base import Model, ModelSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GPRSettings(ModelSettings):
    """Settings of :class:`GPR`.

    Parameters
    ----------
    hyper_samples
        Training points used to fit the kernel hyperparameters.
    """

    section = "gpr model"

    kind: str = "gpr"
    hyper_samples: int = 800


class GPR(Model):
    """Exact GP regression: ``mean = k(x, X) alpha``, ``var = k(x, x) - |L^-1 k(X, x)|^2``.

    The number of training points held is learned (the buffers take the size
    of the state they are loaded from).
    """

    Settings = GPRSettings
    has_variance = True
    closed_form = True

    def __init__(self, settings: GPRSettings, *, n_in: int, n_out: int):
        super().__init__(settings, n_in=n_in, n_out=n_out)
        self.register_buffer("x_train", torch.zeros(0, n_in, dtype=torch.float64))
        self.register_buffer("alpha", torch.zeros(0, n_out, dtype=torch.float64))
        self.register_buffer("chol", torch.zeros(0, 0, dtype=torch.float64))
        self.register_buffer("y_mean", torch.zeros(n_out, dtype=torch.float64))
        self.register_buffer("y_std", torch.ones(n_out, dtype=torch.float64))
        # log signal variance, log length scale, log noise variance
        self.register_buffer("log_hyper", torch.zeros(3, dtype=torch.float64))

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():  # the training-set size is learned: take the saved shapes
            setattr(self, name, value)

    def fit(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, training, *, seed: int,
            progress: bool = False) -> dict[str, Any]:
        """Closed form (:meth:`fit_exact`); ``training`` settings other than the data split do not apply."""
        log = self.fit_exact(x, y, seed=seed)
        with torch.no_grad():
            log.update(best_val_loss=nn.functional.mse_loss(self(x_val), y_val).item(), best_epoch=0)
        return log

    def predict(self, x: torch.Tensor, *, variance: bool = False):
        with torch.inference_mode():
            mean, var = self.forward_with_var(x)
        return (mean, var) if variance else mean

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        signal, length, _ = torch.exp(self.log_hyper)
        return signal * torch.exp(-0.5 * torch.cdist(a / length, b / length) ** 2)

    def fit_exact(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> dict[str, Any]:
        """Fit the hyperparameters on a subsample, then the exact posterior on all of ``x``."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        x64, y64 = x.double(), y.double()
        self.y_mean, self.y_std = y64.mean(0), y64.std(0).clamp_min(1e-12)
        yz = (y64 - self.y_mean) / self.y_std
        rng = np.random.default_rng(seed)
        sub = rng.choice(len(x64), size=min(self.settings.hyper_samples, len(x64)), replace=False)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.sqrt(x.shape[1]), (1e-2, 1e4)) + WhiteKernel(1e-2, (1e-6, 1.0))
        gp = GaussianProcessRegressor(kernel, random_state=seed).fit(x64[sub].numpy(), yz[sub].numpy())
        k = gp.kernel_
        self.log_hyper = torch.log(torch.tensor([k.k1.k1.constant_value, k.k1.k2.length_scale, k.k2.noise_level],
                                                dtype=torch.float64))
        self.x_train = x64.clone()
        noise = float(torch.exp(self.log_hyper[2]))
        K = self._kernel(x64, x64) + noise * torch.eye(len(x64), dtype=torch.float64)
        self.chol = torch.linalg.cholesky(K)
        self.alpha = torch.cholesky_solve(yz, self.chol)
        logger.info("GPR kernel: %s", k)
        return {"kernel": str(k), "n_train": len(x64)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_var(x)[0]

    def forward_with_var(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance (latent, without noise) of each output, in the transformed space."""
        xs = x.double()
        ks = self._kernel(xs, self.x_train)
        mean = ks @ self.alpha
        v = torch.linalg.solve_triangular(self.chol, ks.T, upper=False)
        signal = torch.exp(self.log_hyper[0])
        var = (signal - (v * v).sum(0)).clamp_min(0.0)
        out_mean = (mean * self.y_std + self.y_mean).to(x.dtype)
        out_var = (var[:, None] * self.y_std**2).to(x.dtype)
        return out_mean, out_var
