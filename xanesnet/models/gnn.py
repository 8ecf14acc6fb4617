"""A graph network on the absorber's environment: continuous-filter message passing, read out at the absorber.

Atoms (embedded by element) exchange messages with their neighbours within
``r_edge``; each message is the neighbour's state times a filter learned from
the distance (Gaussian radial basis times a smooth cosine cutoff, as in
SchNet). After ``layers`` rounds the absorber's state and the mean state of
its environment go through a small MLP head (with dropout) to the spectrum.
The inputs are :class:`~xanesnet.descriptors.environment.Environment` rows,
unpacked by its :func:`~xanesnet.descriptors.environment.collate`; everything
is dense over the environment's atoms, so it trains on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xanesnet.descriptors.environment import atoms_in_row, collate
from xanesnet.errors import XanesnetError
from xanesnet.models.base import Model, ModelSettings
from xanesnet.models.mlp import feedforward


@dataclass(frozen=True)
class GNNSettings(ModelSettings):
    """Settings of :class:`GNN`.

    Parameters
    ----------
    width
        Atom state size.
    layers
        Message-passing rounds.
    n_rbf
        Gaussians of the radial basis, spread over 0 to ``r_edge``.
    r_edge
        Atoms closer than this (Angstrom) exchange messages.
    head
        Hidden widths of the readout MLP.
    dropout
        Dropout in the readout (needed > 0 for Monte-Carlo dropout).
    """

    section = "gnn model"
    input_kind = "graph"

    kind: str = "gnn"
    width: int = 48
    layers: int = 3
    n_rbf: int = 12
    r_edge: float = 5.0
    head: tuple[int, ...] = (256,)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width < 1 or self.layers < 1 or self.n_rbf < 2 or not self.r_edge > 0:
            raise XanesnetError("gnn model: width, layers must be >= 1, n_rbf >= 2 and r_edge > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise XanesnetError(f"gnn model: dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "head", tuple(int(h) for h in self.head))


class Interaction(nn.Module):
    """One round: ``h_i += update(sum_j filter(d_ij) * in(h_j))`` over the neighbours j of i.

    The filter is linear in the radial basis, ``filter(d)_f = sum_r basis_r(d) A_rf``
    (the basis is already a smooth, local function of distance), so the sum
    over neighbours runs as one batched matrix product per basis function
    instead of a filter per atom pair and channel.
    """

    def __init__(self, width: int, n_rbf: int):
        super().__init__()
        self.filter = nn.Parameter(torch.randn(n_rbf, width) / n_rbf**0.5)
        self.into = nn.Linear(width, width, bias=False)
        self.update = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """``basis``: (B, n_rbf, k, k), the radial basis of each neighbour pair (zero beyond the cutoff)."""
        per_basis = basis @ self.into(h)[:, None]  # (B, n_rbf, k, width)
        messages = torch.einsum("brif,rf->bif", per_basis, self.filter)
        return h + self.update(messages)


class GNN(Model):
    """Absorber-centred message passing on :class:`~xanesnet.descriptors.environment.Environment` rows."""

    Settings = GNNSettings

    def __init__(self, settings: GNNSettings, *, n_in: int, n_out: int):
        super().__init__(settings, n_in=n_in, n_out=n_out)
        atoms_in_row(n_in)  # refuses rows that are not environments
        s = settings
        self.embed = nn.Embedding(119, s.width, padding_idx=0)
        self.interactions = nn.ModuleList(Interaction(s.width, s.n_rbf) for _ in range(s.layers))
        self.register_buffer("centres", torch.linspace(0.0, s.r_edge, s.n_rbf))
        self.readout = feedforward(2 * s.width, s.head, n_out, dropout=s.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numbers, dist = collate(x)
        atom = numbers > 0
        r_edge = self.settings.r_edge
        eye = torch.eye(dist.shape[1], dtype=torch.bool, device=dist.device)
        edge = (atom[:, :, None] & atom[:, None, :] & ~eye & (dist < r_edge)).to(dist.dtype)
        edge = edge * 0.5 * (torch.cos(torch.pi * dist.clamp(max=r_edge) / r_edge) + 1.0)
        gamma = 1.0 / (self.centres[1] - self.centres[0]) ** 2
        basis = torch.exp(-gamma * (dist[:, None] - self.centres[None, :, None, None]) ** 2) * edge[:, None]
        h = self.embed(numbers)
        for interaction in self.interactions:
            h = interaction(h, basis) * atom[..., None]
        pooled = h.sum(1) / atom.sum(1, keepdim=True).clamp(min=1)
        return self.readout(torch.cat([h[:, 0], pooled], dim=1))
