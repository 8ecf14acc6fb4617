"""The absorber's environment as a graph: the featurise and collate steps of graph models.

:class:`Environment` featurises: the ``max_atoms`` atoms nearest the absorber
within ``r_cut`` (the absorber first, then by distance), packed in one
fixed-length row of their atomic numbers and all their pairwise distances, so
the feature cache, the training-range check, selection and importance treat it
like any vector. The row is invariant to rotation and translation and holds
the geometry up to reflection. :func:`collate` unpacks a batch of rows into
atoms (atomic numbers, padding 0) and distances, from which a graph network
takes its neighbour lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanesnet.descriptors.base import Descriptor
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure


@dataclass(frozen=True)
class Environment(Descriptor):
    """Atoms and distances of the absorber's environment.

    Parameters
    ----------
    r_cut
        Atoms closer than this to the absorber (Angstrom) are in the environment.
    max_atoms
        Atoms kept, the absorber included: the nearest ones.
    hydrogens
        Include hydrogen atoms (they scatter weakly; leaving them out lets the
        same number of atoms reach further).
    """

    kind = "environment"
    input_kind = "graph"
    standardize = False

    r_cut: float = 6.0
    max_atoms: int = 24
    hydrogens: bool = False

    def __post_init__(self) -> None:
        if not self.r_cut > 0:
            raise XanesnetError(f"environment: r_cut must be positive, got {self.r_cut}")
        if self.max_atoms < 2:
            raise XanesnetError(f"environment: max_atoms must be at least 2, got {self.max_atoms}")

    def create(self, structure: Structure, absorber: int) -> np.ndarray:
        d = np.linalg.norm(structure.positions - structure.positions[absorber], axis=1)
        keep = (d < self.r_cut) & ((structure.numbers > 1) | self.hydrogens)
        keep[absorber] = False
        near = np.flatnonzero(keep)
        near = near[np.lexsort((structure.numbers[near], d[near]))][: self.max_atoms - 1]
        atoms = np.concatenate([[absorber], near])
        k = self.max_atoms
        numbers = np.zeros(k)
        numbers[: len(atoms)] = structure.numbers[atoms]
        pos = structure.positions[atoms]
        dist = np.zeros((k, k))
        dist[: len(atoms), : len(atoms)] = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        return np.concatenate([numbers, dist[np.triu_indices(k, 1)]])

    @property
    def feature_names(self) -> list[str]:
        k = self.max_atoms
        i, j = np.triu_indices(k, 1)
        return [f"Z[{a}]" for a in range(k)] + [f"d[{a},{b}]" for a, b in zip(i, j)]

    def feature_groups(self) -> dict[str, list[int]]:
        """Elements and distances, of the first six neighbours and of the rest."""
        k = self.max_atoms
        i, j = np.triu_indices(k, 1)
        shell = min(7, k)
        dist = k + np.arange(len(i))
        groups = {"elements 1-6": list(range(1, shell)), "elements 7+": list(range(shell, k)),
                  "absorber distances 1-6": dist[(i == 0) & (j < shell)].tolist(),
                  "absorber distances 7+": dist[(i == 0) & (j >= shell)].tolist(),
                  "neighbour distances": dist[i > 0].tolist()}
        return {name: cols for name, cols in groups.items() if cols}


def atoms_in_row(n_features: int) -> int:
    """The ``max_atoms`` of an environment row of ``n_features`` (``k + k (k - 1) / 2``)."""
    k = int(round((np.sqrt(1 + 8 * n_features) - 1) / 2))
    if k + k * (k - 1) // 2 != n_features:
        raise XanesnetError(f"{n_features} features are not an environment row (k atoms + k(k-1)/2 distances)")
    return k


def collate(rows):
    """A batch of environment rows (torch, (B, n_features)) -> atomic numbers (B, k) and distances (B, k, k)."""
    import torch

    k = atoms_in_row(rows.shape[1])
    numbers = rows[:, :k].round().long()
    i, j = torch.triu_indices(k, k, 1)
    dist = rows.new_zeros(len(rows), k, k)
    dist[:, i, j] = rows[:, k:]
    return numbers, dist + dist.transpose(1, 2)
