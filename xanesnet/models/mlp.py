"""A multilayer perceptron: descriptor vector -> spectrum."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from xanesnet.errors import XanesnetError

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh,
                                           "prelu": nn.PReLU}


class MLP(nn.Module):
    """Fully connected network with dropout after every hidden layer.

    Parameters
    ----------
    n_in, n_out
        Descriptor length and number of energy points (or target components).
    hidden
        Widths of the hidden layers.
    activation
        One of :data:`ACTIVATIONS`.
    dropout
        Dropout probability after each hidden layer (0 disables it; needed > 0
        for Monte-Carlo dropout uncertainty).
    """

    kind = "mlp"

    def __init__(self, *, n_in: int, n_out: int, hidden: tuple[int, ...] = (512, 512), activation: str = "silu",
                 dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise XanesnetError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise XanesnetError(f"dropout must be in [0, 1), got {dropout}")
        self.n_in, self.n_out = n_in, n_out
        self.hidden, self.activation, self.dropout = tuple(hidden), activation, dropout
        layers: list[nn.Module] = []
        width = n_in
        for h in self.hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def get_params(self) -> dict[str, Any]:
        """Constructor settings (without sizes): what is saved and rebuilt."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "n_in", "n_out")]
        params = {p: getattr(self, p) for p in names}
        params["hidden"] = list(params["hidden"])
        return {"kind": self.kind, **params}
