"""A multilayer perceptron: descriptor vector -> spectrum."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xanesnet.errors import XanesnetError
from xanesnet.models.base import Model, ModelSettings

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh,
                                           "prelu": nn.PReLU}


@dataclass(frozen=True)
class MLPSettings(ModelSettings):
    """Settings of :class:`MLP`.

    Parameters
    ----------
    hidden
        Widths of the hidden layers.
    activation
        One of :data:`ACTIVATIONS`.
    dropout
        Dropout probability after each hidden layer (0 disables it; needed > 0
        for Monte-Carlo dropout uncertainty).
    """

    section = "mlp model"

    kind: str = "mlp"
    hidden: tuple[int, ...] = (512, 512)
    activation: str = "silu"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation not in ACTIVATIONS:
            raise XanesnetError(f"unknown activation {self.activation!r}; known: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise XanesnetError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))


def feedforward(n_in: int, hidden: tuple[int, ...], n_out: int, *, activation: str = "silu",
                dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of widths ``hidden``, each followed by the activation and (if ``dropout`` > 0) dropout."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class MLP(Model):
    """Fully connected network with dropout after every hidden layer."""

    Settings = MLPSettings

    def __init__(self, settings: MLPSettings, *, n_in: int, n_out: int):
        super().__init__(settings, n_in=n_in, n_out=n_out)
        self.net = feedforward(n_in, settings.hidden, n_out, activation=settings.activation, dropout=settings.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
