"""The absorber's first coordination shell: coordination number, mean distance, donor atoms by element group.

The first shell is every atom j with ``r_j <= FIRST_SHELL_FACTOR * (R_cov(M) + R_cov(j))``,
``r_j`` its distance from the absorber M and ``R_cov`` ASE's covalent radii
(:data:`ase.data.covalent_radii`, Cordero et al. 2008). Hydrogen counts like
any other atom (a hydride, or an agostic C-H close enough); every carbon of an
eta-5 ring is a neighbour (ferrocene has CN 10). Donors are counted by the
groups of :data:`DONOR_GROUPS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanesnet.io.structures import Structure

#: Neighbour cutoff factor on the sum of covalent radii.
FIRST_SHELL_FACTOR = 1.2

#: Donor element groups (name -> elements); an element in none of them counts as ``other`` (H, B, Si, ...).
DONOR_GROUPS: dict[str, tuple[str, ...]] = {
    "C": ("C",),
    "N": ("N",),
    "O": ("O",),
    "P/S": ("P", "S"),
    "halogen": ("F", "Cl", "Br", "I"),
    "other": (),
}


def donor_group(symbol: str) -> str:
    """The :data:`DONOR_GROUPS` name an element's atoms are counted under."""
    return next((g for g, members in DONOR_GROUPS.items() if symbol in members), "other")


@dataclass(frozen=True)
class FirstShell:
    """Coordination number, mean first-shell distance (Angstrom) and donor counts per group."""

    cn: int
    r1: float
    donors: dict[str, int]
    neighbours: tuple[int, ...]


def first_shell(structure: Structure, absorber: int) -> FirstShell:
    """The first coordination shell of atom ``absorber`` (see the module docstring for the rule).

    A molecule with no atom within the cutoff has ``cn == 0`` and ``r1 = nan``.
    """
    from ase.data import chemical_symbols, covalent_radii

    d = np.linalg.norm(structure.positions - structure.positions[absorber], axis=1)
    cutoff = FIRST_SHELL_FACTOR * (covalent_radii[structure.numbers[absorber]] + covalent_radii[structure.numbers])
    inside = (d <= cutoff) & (np.arange(len(d)) != absorber)
    idx = np.flatnonzero(inside)
    donors = {g: 0 for g in DONOR_GROUPS}
    for z in structure.numbers[idx]:
        donors[donor_group(chemical_symbols[z])] += 1
    return FirstShell(cn=len(idx), r1=float(d[idx].mean()) if len(idx) else float("nan"), donors=donors,
                      neighbours=tuple(int(i) for i in idx))


def cutoff_ratios(structure: Structure, absorber: int, n: int) -> np.ndarray:
    """The ``n`` smallest ``r_j / (R_cov(M) + R_cov(j))`` around atom ``absorber``, ascending (``inf`` past the last
    atom): the first shell is every ratio up to :data:`FIRST_SHELL_FACTOR`."""
    from ase.data import covalent_radii

    d = np.linalg.norm(structure.positions - structure.positions[absorber], axis=1)
    ratio = np.delete(d / (covalent_radii[structure.numbers[absorber]] + covalent_radii[structure.numbers]), absorber)
    out = np.full(n, np.inf)
    head = np.sort(ratio)[:n]
    out[: len(head)] = head
    return out
