"""Weighted atom-centred symmetry functions (wACSF) of one absorbing atom.

Definitions (Gastegger et al., J. Chem. Phys. 148, 241709 (2018); Behler,
J. Chem. Phys. 134, 074106 (2011)), absorber ``i``, neighbours ``j`` with
``0 < r_ij < r_max`` (Angstrom):

* ``fc(r) = 0.5 [cos(pi r / r_max) + 1]``
* ``G1 = sum_j fc(r_ij)``
* ``G2_m = sum_j w_j exp(-eta_m (r_ij - mu_m)^2) fc(r_ij)``
* ``G4_{m,lambda,zeta} = 2^(1-zeta) sum_{j<k} w_j w_k (1 + lambda cos theta_jik)^zeta
  exp(-eta_m [(r_ij-mu_m)^2 + (r_ik-mu_m)^2 + (r_jk-mu_m)^2]) fc(r_ij) fc(r_ik) fc(r_jk)``

with ``w_j = weight_scale * Z_j``. The vector is G1, G2 by m, G4 with m
outermost then lambda then zeta, then the optional channels below, then
charge and spin.

Optional, element-resolved channels (each off when its group list is empty;
atoms in no listed group form a last ``other`` group):

* element G2 (``element_groups``): unweighted shifted G2 per group,
  ``sum_{j in g} exp(-eta (r_ij - mu)^2) fc(r_ij)``;
* angular pairs (``angular_groups``): the modified angular functions of
  Smith et al. (Chem. Sci. 8, 3192 (2017)), one block per unordered pair of
  groups, ``2^(1-zeta) sum_{j<k} (1 + cos(theta_jik - theta_s))^zeta
  exp(-eta ((r_ij + r_ik)/2 - R_s)^2) fa(r_ij) fa(r_ik)`` with ``fa`` the
  cosine cutoff at ``angular_r_max``, by pair, then ``R_s``, then ``theta_s``;
* first shell (``shell_groups``): finely spaced Gaussians
  ``sum_{j in g} exp(-eta (r_ij - mu)^2)`` over the donor atoms (hydrogen
  is never a donor), resolving bond lengths to a few hundredths of an A;
* donor environments (``donor_env_groups``, needs ``shell_groups``): for
  every donor ``d`` (non-hydrogen, ``r_id < donor_cutoff``, weight
  ``fd = fc(r_id)`` with the cutoff at ``donor_cutoff``), the radial
  distribution of its own neighbours ``k != i`` by group,
  ``sum_d fd sum_{k in g} exp(-eta (r_dk - mu)^2) fe(r_dk)``, summed over
  the donors of each shell group: what a donor is bonded to (cyanide C vs
  carbonyl C vs an aromatic ring), which the absorber-centred functions
  only see smeared over several distances.

Radial grids: G2 is "shifted" (``mu = linspace(r_min+0.5, r_max-0.5, n_g2)``,
``eta = 1/(2 dr^2)``); G4 is "centred" (``mu = 0``,
``eta = 1/(2 r^2)`` for ``r`` in ``linspace(r_min+1.0, r_max-0.5, n)``).

The published XANESNET tools have two quirks, reproduced by their presets:
``fc`` is not set to zero beyond ``r_max`` (it matters for ``r_jk``), and the
G4 grid is built for ``n_g4`` points of which only the first
``n_g4 / (|lambda| |zeta|)`` are used (so the widths stop well short of
``r_max``). Our own default clips ``fc`` and spreads the G4 widths over the
whole range; see ``docs/descriptor.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Sequence

import numpy as np
from ase.data import atomic_numbers

from xanesnet.descriptors.base import Descriptor
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import Structure

#: The most points any radial or angular grid of the descriptor may have.
MAX_GRID_POINTS = 1024
#: The longest descriptor vector (checked by counting, before any feature name is built).
MAX_FEATURES = 100_000


@dataclass(frozen=True)
class WACSF(Descriptor):
    """wACSF settings; every default is here.

    Parameters
    ----------
    r_min, r_max
        Radial range in Angstrom; neighbours are atoms with ``0 < r < r_max``.
    n_g2, n_g4
        Numbers of G2 and G4 functions (``n_g4`` counts every (width, lambda,
        zeta) combination, so it must divide by ``len(lambdas) * len(zetas)``).
    lambdas, zetas
        Angular parameters of G4.
    weight_scale
        Element weight ``w_j = weight_scale * Z_j``.
    clip_cutoff
        Set ``fc(r) = 0`` for ``r >= r_max`` (the published tools do not).
    g4_grid_points
        Points in the centred G4 grid of which the first
        ``n_g4 / (len(lambdas) len(zetas))`` are used; ``None`` builds exactly
        that many, spreading the widths over the whole range.
    element_groups
        Extra, unweighted G2 channels, one per group of elements; a group is a
        comma-separated list of symbols (``"P,S,As,Se"``); atoms in no group
        form a last ``other`` channel. Empty: no element channels.
    n_element_g2, element_r_min, element_r_max
        Shifted Gaussians of the element channels: ``mu`` on
        ``linspace(element_r_min, element_r_max, n_element_g2)`` (Angstrom),
        ``eta = 1/(2 dr^2)``.
    angular_groups
        Groups of the angular pair channels (empty: none).
    angular_r_max, angular_shells, angular_eta, n_angular, angular_zeta
        Their cutoff (A), radial centres ``R_s`` (A) and width, the number of
        angle centres ``theta_s = (t + 1/2) pi / n_angular``, and ``zeta``.
    shell_groups
        Donor groups of the first-shell channels (empty: none).
    n_shell_g2, shell_r_min, shell_r_max
        Their Gaussians: ``mu`` on ``linspace(shell_r_min, shell_r_max, n_shell_g2)``,
        ``eta = 1/(2 dr^2)``.
    donor_env_groups
        Neighbour groups of the donor-environment channels (empty: none).
    donor_cutoff, n_donor_env, donor_env_r_max
        Donors lie within ``donor_cutoff`` of the absorber; their neighbours
        within ``donor_env_r_max`` of the donor, with Gaussians on
        ``linspace(1.0, donor_env_r_max - 0.5, n_donor_env)``.
    charge_spin
        Append the molecule's charge and spin (from a tmQM comment line).
    """

    kind = "wacsf"
    revision = 3

    r_min: float = 0.0
    r_max: float = 6.0
    n_g2: int = 32
    n_g4: int = 64
    lambdas: tuple[float, ...] = (1.0, -1.0)
    zetas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    weight_scale: float = 1.0
    clip_cutoff: bool = True
    g4_grid_points: int | None = None
    element_groups: tuple[str, ...] = ()
    n_element_g2: int = 16
    element_r_min: float = 1.5
    element_r_max: float = 5.5
    angular_groups: tuple[str, ...] = ()
    angular_r_max: float = 3.5
    angular_shells: tuple[float, ...] = (1.9, 2.3, 2.7, 3.1)
    angular_eta: float = 8.0
    n_angular: int = 8
    angular_zeta: float = 8.0
    shell_groups: tuple[str, ...] = ()
    n_shell_g2: int = 16
    shell_r_min: float = 1.7
    shell_r_max: float = 2.7
    donor_env_groups: tuple[str, ...] = ()
    donor_cutoff: float = 3.0
    n_donor_env: int = 11
    donor_env_r_max: float = 4.0
    charge_spin: bool = False

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise XanesnetError(f"invalid wacsf settings: {msg}")

        for name in ("n_g2", "n_g4", "g4_grid_points", "n_element_g2", "n_angular", "n_shell_g2", "n_donor_env"):
            value = getattr(self, name)
            if value is not None and not -MAX_GRID_POINTS <= value <= MAX_GRID_POINTS:
                bad(f"{name}={value} is beyond {MAX_GRID_POINTS}")
        if self.r_max > 100.0:
            bad(f"r_max={self.r_max} A is beyond 100 A")
        if not 0 <= self.r_min < self.r_max:
            bad(f"need 0 <= r_min < r_max, got r_min={self.r_min}, r_max={self.r_max}")
        if self.r_max - self.r_min <= 1.5:
            bad("r_max - r_min must exceed 1.5 A (the G4 grid spans r_min+1.0 to r_max-0.5)")
        if self.n_g2 < 0 or self.n_g2 == 1:
            bad(f"n_g2 must be 0 or at least 2, got {self.n_g2}")
        n_ang = len(self.lambdas) * len(self.zetas)
        if self.n_g4 < 0 or (self.n_g4 and (n_ang == 0 or self.n_g4 % n_ang)):
            bad(f"n_g4={self.n_g4} is not a multiple of len(lambdas) * len(zetas) = {n_ang}")
        if self.g4_grid_points is not None and self.n_g4 and self.g4_grid_points < self.n_g4 // n_ang:
            bad(f"g4_grid_points={self.g4_grid_points} is fewer than the {self.n_g4 // n_ang} G4 widths used")
        if any(z <= 0 for z in self.zetas):
            bad("zetas must be positive")
        if self.element_groups and (self.n_element_g2 < 2 or not self.element_r_min < self.element_r_max):
            bad("element channels need n_element_g2 >= 2 and element_r_min < element_r_max")
        if self.angular_groups and (self.n_angular < 1 or not self.angular_shells or self.angular_r_max <= 0
                                    or self.angular_eta <= 0 or self.angular_zeta <= 0):
            bad("angular channels need n_angular >= 1, angular_shells, and positive angular_r_max, angular_eta, angular_zeta")
        if self.shell_groups and (self.n_shell_g2 < 2 or not 0 < self.shell_r_min < self.shell_r_max):
            bad("first-shell channels need n_shell_g2 >= 2 and 0 < shell_r_min < shell_r_max")
        if self.donor_env_groups and (not self.shell_groups or self.n_donor_env < 2 or self.donor_env_r_max <= 1.5
                                      or self.donor_cutoff <= 0):
            bad("donor-environment channels need shell_groups, n_donor_env >= 2, donor_env_r_max > 1.5 A "
                "and a positive donor_cutoff")
        for groups in (self.element_groups, self.angular_groups, self.shell_groups, self.donor_env_groups):
            seen: set[str] = set()
            for group in groups:
                for sym in group.split(","):
                    if atomic_numbers.get(sym.strip(), 0) == 0:
                        bad(f"unknown element {sym.strip()!r} in element group {group!r}")
                    if sym.strip() in seen:
                        bad(f"element {sym.strip()} is in more than one group")
                    seen.add(sym.strip())

        if self.n_features > MAX_FEATURES:
            bad(f"these settings give {self.n_features:,} features, more than {MAX_FEATURES:,}")

    @property
    def n_features(self) -> int:
        """Vector length, counted without building the feature names (bounded before they are built)."""
        n = 1 + self.n_g2 + self.n_g4
        if self.element_groups:
            n += (len(self.element_groups) + 1) * self.n_element_g2
        if self.angular_groups:
            g = len(self.angular_groups) + 1
            n += g * (g + 1) // 2 * len(self.angular_shells) * self.n_angular
        if self.shell_groups:
            n += (len(self.shell_groups) + 1) * self.n_shell_g2
            if self.donor_env_groups:
                n += (len(self.shell_groups) + 1) * (len(self.donor_env_groups) + 1) * self.n_donor_env
        return n + 2 * bool(self.charge_spin)

    # --- grids -----------------------------------------------------------------
    @cached_property
    def _g2_grid(self) -> tuple[np.ndarray, np.ndarray]:
        return _shifted_grid(self.r_min + 0.5, self.r_max - 0.5, self.n_g2)

    @cached_property
    def _g4_widths(self) -> np.ndarray:
        n_used = self.n_g4 // max(1, len(self.lambdas) * len(self.zetas))
        n_grid = n_used if self.g4_grid_points is None else self.g4_grid_points
        r_aux = np.linspace(self.r_min + 1.0, self.r_max - 0.5, n_grid)[:n_used]
        return 1.0 / (2.0 * r_aux**2)

    @cached_property
    def _element_grid(self) -> tuple[np.ndarray, np.ndarray]:
        return _shifted_grid(self.element_r_min, self.element_r_max, self.n_element_g2)

    @cached_property
    def _group_of_z(self) -> np.ndarray:
        return _group_table(self.element_groups)

    @cached_property
    def _shell_grid(self) -> tuple[np.ndarray, np.ndarray]:
        return _shifted_grid(self.shell_r_min, self.shell_r_max, self.n_shell_g2)

    @cached_property
    def _donor_env_grid(self) -> tuple[np.ndarray, np.ndarray]:
        return _shifted_grid(1.0, self.donor_env_r_max - 0.5, self.n_donor_env)

    @cached_property
    def _angle_centres(self) -> np.ndarray:
        return (np.arange(self.n_angular) + 0.5) * np.pi / self.n_angular

    @cached_property
    def _pair_index(self) -> np.ndarray:
        """Index of the unordered group pair (a, b) among all pairs, a <= b, row by row."""
        n = len(self.angular_groups) + 1
        index = np.zeros((n, n), dtype=np.int64)
        for p, (a, b) in enumerate(zip(*np.triu_indices(n))):
            index[a, b] = index[b, a] = p
        return index

    @cached_property
    def _angular(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lam, zeta = np.meshgrid(np.asarray(self.lambdas, float), np.asarray(self.zetas, float), indexing="ij")
        lam, zeta = lam.ravel(), zeta.ravel()  # lambda outer, zeta inner
        return lam, zeta, 2.0 ** (1.0 - zeta)

    # --- names -------------------------------------------------------------------
    @cached_property
    def channel_names(self) -> list[str]:
        return _group_names(self.element_groups)

    @property
    def feature_names(self) -> list[str]:
        return self._feature_names

    @cached_property
    def _feature_names(self) -> list[str]:
        return [name for name, _, _ in self._features]

    def feature_groups(self) -> dict[str, list[int]]:
        """Group name -> columns: ``G1``, each G2 centre, each G4 width (all lambda, zeta), each element channel
        (``G2_C``), angular pair (``A_C-N``), first-shell channel (``S_N``) and donor environment (``D_N:C``),
        ``charge+spin``; then one group per family of more than one kind (``all G2``, ``all G4``, ...)."""
        groups: dict[str, list[int]] = {}
        families: dict[str, list[int]] = {}
        for i, (_, group, family) in enumerate(self._features):
            groups.setdefault(group, []).append(i)
            if family:
                families.setdefault(family, []).append(i)
        groups.update({f: cols for f, cols in families.items() if len(cols) < len(self._features)})
        return groups

    def radial_channels(self) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
        """``all G2`` -> ``G2`` (Z-weighted), ``all element G2`` -> each element channel, ``all first shell`` -> each
        first-shell channel: their columns and Gaussian centres ``mu`` (Angstrom)."""
        groups = self.feature_groups()
        out = {"all G2": {"G2": ([i for i, (_, _, f) in enumerate(self._features) if f == "all G2"], self._g2_grid[1])},
               "all element G2": {ch: (groups[f"G2_{ch}"], self._element_grid[1]) for ch in self.channel_names}
               if self.element_groups else {},
               "all first shell": {ch: (groups[f"S_{ch}"], self._shell_grid[1]) for ch in _group_names(self.shell_groups)}
               if self.shell_groups else {}}
        return {family: {ch: (cols, [float(m) for m in mu]) for ch, (cols, mu) in channels.items()}
                for family, channels in out.items() if any(cols for cols, _ in channels.values())}

    @cached_property
    def _features(self) -> list[tuple[str, str, str | None]]:
        """(name, group, family) of every feature, in order."""
        out = [("G1", "G1", None)]
        out += [(n, n, "all G2") for n in (f"G2[mu={m:.3f}]" for m in self._g2_grid[1])]
        lam, zeta, _ = self._angular
        for eta in self._g4_widths:
            out += [(f"G4[eta={eta:.4f},lambda={lm:g},zeta={z:g}]", f"G4[eta={eta:.4f}]", "all G4") for lm, z in zip(lam, zeta)]
        for ch in self.channel_names:
            out += [(f"G2_{ch}[mu={m:.3f}]", f"G2_{ch}", "all element G2") for m in self._element_grid[1]]
        groups = _group_names(self.angular_groups)
        for a, b in zip(*np.triu_indices(len(groups))):
            pair = f"A_{groups[a]}-{groups[b]}"
            out += [(f"{pair}[R={rs:g},theta={np.degrees(t):.1f}]", pair, "all angular pairs")
                    for rs in self.angular_shells for t in self._angle_centres]
        for ch in _group_names(self.shell_groups):
            out += [(f"S_{ch}[mu={m:.3f}]", f"S_{ch}", "all first shell") for m in self._shell_grid[1]]
        if self.donor_env_groups:
            for ch in _group_names(self.shell_groups):
                for nb in _group_names(self.donor_env_groups):
                    out += [(f"D_{ch}:{nb}[mu={m:.3f}]", f"D_{ch}:{nb}", "all donor environments")
                            for m in self._donor_env_grid[1]]
        if self.charge_spin:
            out += [("charge", "charge+spin", None), ("spin", "charge+spin", None)]
        return out

    # --- the vectors -----------------------------------------------------------
    def _cutoff(self, r: np.ndarray) -> np.ndarray:
        if self.clip_cutoff:
            return _cosine_cutoff(r, self.r_max)
        return 0.5 * (np.cos(np.pi * r / self.r_max) + 1.0)

    def create_batch(self, structures: Sequence[Structure], absorbers: Sequence[int]
                     ) -> tuple[np.ndarray, list[XanesnetError | None]]:
        """Vectors of many molecules at once, vectorised over their absorbers, neighbours and neighbour pairs.

        Molecules are processed in blocks of about :data:`BLOCK_ATOMS` atoms,
        so memory stays bounded whatever the number of structures.
        """
        out = np.full((len(structures), self.n_features), np.nan)
        errors: list[XanesnetError | None] = [None] * len(structures)
        sizes = np.fromiter((len(s) for s in structures), dtype=np.int64, count=len(structures))
        # similar sizes together (little padding in the pair matrices), largest first: the first block sets how big the
        # temporaries get, so the rest reuse that memory instead of mapping fresh pages for ever larger arrays
        order = np.argsort(-sizes, kind="stable")
        start = 0
        while start < len(order):
            stop = start + max(1, int(np.searchsorted(np.cumsum(sizes[order[start:]]), BLOCK_ATOMS, side="right")))
            block = order[start:stop]
            block_errors: list[XanesnetError | None] = [None] * len(block)
            out[block] = self._create_block([structures[i] for i in block], [absorbers[i] for i in block], block_errors)
            for i, e in zip(block, block_errors):
                errors[i] = e
            start = stop
        return out, errors

    def _create_block(self, structures: list[Structure], absorbers: list[int], errors: list[XanesnetError | None]
                      ) -> np.ndarray:
        """Rows of one block of structures (NaN, and the reason in ``errors``, for those that cannot be described)."""
        out = np.full((len(structures), self.n_features), np.nan)
        n_mol = len(structures)
        sizes = np.fromiter((len(s) for s in structures), dtype=np.int64, count=n_mol)
        first = np.cumsum(sizes) - sizes
        positions = np.concatenate([s.positions for s in structures])
        numbers = np.concatenate([s.numbers for s in structures])
        mol = np.repeat(np.arange(n_mol), sizes)
        centre = first + np.asarray(absorbers, dtype=np.int64)
        vec = positions - positions[centre][mol]
        r_all = np.sqrt(np.einsum("ij,ij->i", vec, vec))
        near = r_all < self.r_max  # an atom at distance 0 is an overlap, caught below
        near[centre] = False
        n_near = np.bincount(mol[near], minlength=n_mol)
        closest = np.full(n_mol, np.inf)
        np.minimum.at(closest, mol[near], r_all[near])
        ok = np.ones(n_mol, dtype=bool)
        for m in np.flatnonzero((n_near == 0) | (closest < 0.5)):
            s = structures[m]
            where = s.source or s.name
            ok[m] = False
            if n_near[m] == 0:
                errors[m] = XanesnetError(
                    f"absorber (atom {absorbers[m]}) has no neighbour within r_max = {self.r_max} A", path=where)
            else:
                errors[m] = XanesnetError(
                    f"an atom lies {closest[m]:.3f} A from the absorber (closer than 0.5 A): overlapping atoms", path=where)
        if self.charge_spin:
            for m, s in enumerate(structures):
                if ok[m] and (s.charge is None or s.spin is None):
                    ok[m] = False
                    errors[m] = XanesnetError(
                        "charge_spin needs the charge q and spin S (tmQM comment line 'q = .. | S = ..')",
                        path=s.source or s.name)
        kept = np.flatnonzero(ok)
        if len(kept) == 0:
            return out
        n_ok = len(kept)
        compact = np.cumsum(ok) - 1  # block molecule -> index among the kept ones
        nb = np.flatnonzero(near & ok[mol])
        seg = compact[mol[nb]]  # sorted: neighbours stay in molecule order
        v, r, z = vec[nb], r_all[nb], numbers[nb]
        w = self.weight_scale * z
        fc = self._cutoff(r)
        parts = [_segment_sum(seg, fc[:, None], n_ok)]

        if self.n_g2:
            eta, mu = self._g2_grid
            parts.append(_segment_sum(seg, np.exp(-eta * (r[:, None] - mu) ** 2) * (w * fc)[:, None], n_ok))
        if self.n_g4:
            parts.append(self._g4(v, r, w, fc, seg, n_ok))
        if self.element_groups:
            eta, mu = self._element_grid
            n_ch = len(self.channel_names)
            gauss = np.exp(-eta * (r[:, None] - mu) ** 2) * fc[:, None]  # (neighbours, mu)
            parts.append(_segment_sum(seg * n_ch + self._group_of_z[z], gauss, n_ok * n_ch).reshape(n_ok, -1))
        if self.angular_groups:
            parts.append(self._angular_pairs(v, r, z, seg, n_ok))
        if self.shell_groups:
            parts += self._first_shell(positions, numbers, mol, centre, r_all, ok, compact, nb, r, z, seg, n_ok)
        if self.charge_spin:
            parts.append(np.array([[structures[m].charge, structures[m].spin] for m in kept], dtype=float))
        out[kept] = np.concatenate(parts, axis=1)
        return out

    def _g4(self, vec: np.ndarray, r: np.ndarray, w: np.ndarray, fc: np.ndarray, seg: np.ndarray,
            n_mol: int) -> np.ndarray:
        """G4 of each molecule: per-pair terms (pairs, widths) and (pairs, lambda*zeta), built in place, then one
        small matrix product per molecule."""
        eta = self._g4_widths
        lam, _, norm = self._angular
        # pairs j < k of each molecule's neighbours; with a clipped cutoff fc(r_jk) = 0 beyond r_max, so those are left out
        j, k, dot, r_jk2 = _close_pairs(vec, r * r, seg, n_mol, self.r_max if self.clip_cutoff else None)
        rj, rk = r[j], r[k]
        cos = np.clip(dot / (rj * rk), -1.0, 1.0)  # dot = r_ij r_ik cos(theta_jik); rounding can step past +-1
        wfc = w * fc
        pref = wfc[j] * wfc[k]
        pref *= self._cutoff(np.sqrt(r_jk2))
        # centred grid: mu = 0, so the three Gaussians combine into one exponent
        exponent = rj * rj
        exponent += rk * rk
        exponent += r_jk2
        radial = np.multiply.outer(exponent, -eta)  # (pairs, widths)
        np.exp(radial, out=radial)
        radial *= pref[:, None]
        angular = self._angular_terms(cos)  # (pairs, lambda*zeta), lambda outer, zeta inner; without 2^(1-zeta)
        out = np.zeros((n_mol, len(eta), len(lam)))
        bounds = np.searchsorted(seg[j], np.arange(n_mol + 1))  # each molecule's pairs are contiguous
        for m in np.flatnonzero(np.diff(bounds)):
            out[m] = radial[bounds[m]:bounds[m + 1]].T @ angular[bounds[m]:bounds[m + 1]]
        return (out * norm).reshape(n_mol, -1)

    def _angular_terms(self, cos: np.ndarray) -> np.ndarray:
        """``(1 + lambda cos)^zeta`` per pair and (lambda, zeta); integer powers by repeated squaring."""
        zetas = np.asarray(self.zetas, float)
        out = np.empty((len(cos), len(self.lambdas), len(zetas)), dtype=cos.dtype)
        for li, lm in enumerate(self.lambdas):
            base = cos * lm
            base += 1.0
            powers = _powers(base, zetas)
            for zi, z in enumerate(zetas):
                out[:, li, zi] = powers[float(z)]
        return out.reshape(len(cos), len(self.lambdas) * len(zetas))

    def _angular_pairs(self, vec: np.ndarray, r: np.ndarray, z: np.ndarray, seg: np.ndarray, n_mol: int) -> np.ndarray:
        """Modified angular functions, one block per unordered pair of groups."""
        n_blocks = len(self._pair_index) * (len(self._pair_index) + 1) // 2
        close = np.flatnonzero(r < self.angular_r_max)
        j, k, dot, _ = _close_pairs(vec[close], r[close] ** 2, seg[close], n_mol)
        j, k = close[j], close[k]
        theta = np.arccos(np.clip(dot / (r[j] * r[k]), -1.0, 1.0))
        fa = _cosine_cutoff(r, self.angular_r_max)
        radial = np.exp(-self.angular_eta * (0.5 * (r[j] + r[k])[:, None] - np.asarray(self.angular_shells)) ** 2)
        radial *= (fa[j] * fa[k])[:, None]
        angular = 2.0 ** (1.0 - self.angular_zeta) * (1.0 + np.cos(theta[:, None] - self._angle_centres)) ** self.angular_zeta
        group = _group_table(self.angular_groups)[z]
        terms = (radial[:, :, None] * angular[:, None, :]).reshape(len(j), radial.shape[1] * angular.shape[1])  # R_s, theta_s
        labels = seg[j] * n_blocks + self._pair_index[group[j], group[k]]
        return _segment_sum(labels, terms, n_mol * n_blocks).reshape(n_mol, -1)

    def _first_shell(self, positions: np.ndarray, numbers: np.ndarray, mol: np.ndarray, centre: np.ndarray,
                     r_all: np.ndarray, ok: np.ndarray, compact: np.ndarray, nb: np.ndarray, r: np.ndarray,
                     z: np.ndarray, seg: np.ndarray, n_mol: int) -> list[np.ndarray]:
        """Fine bond-length Gaussians by donor group and, optionally, each donor's own neighbours."""
        heavy = np.flatnonzero(z > 1)
        eta, mu = self._shell_grid
        n_donor_groups = len(self.shell_groups) + 1
        donor_group = _group_table(self.shell_groups)[z[heavy]]
        gauss = np.exp(-eta * (r[heavy][:, None] - mu) ** 2)
        parts = [_segment_sum(seg[heavy] * n_donor_groups + donor_group, gauss, n_mol * n_donor_groups).reshape(n_mol, -1)]
        if self.donor_env_groups:
            donor = heavy[r[heavy] < self.donor_cutoff]
            eta, mu = self._donor_env_grid
            n_nb = len(self.donor_env_groups) + 1
            # only atoms that can be within donor_env_r_max of a donor (the rest add exact zeros)
            others = np.flatnonzero((r_all < self.donor_cutoff + self.donor_env_r_max) & ok[mol])
            others = others[~np.isin(others, centre)]
            d, o = _pairs_across(np.bincount(seg[donor], minlength=n_mol), np.bincount(compact[mol[others]], minlength=n_mol))
            diff = positions[others[o]] - positions[nb[donor[d]]]
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            keep = (dist > 1e-8) & (dist < self.donor_env_r_max)  # a donor is not its own neighbour
            d, o, dist = d[keep], o[keep], dist[keep]
            fe = _cosine_cutoff(dist, self.donor_env_r_max) * _cosine_cutoff(r[donor[d]], self.donor_cutoff)
            gauss = np.exp(-eta * (dist[:, None] - mu) ** 2) * fe[:, None]
            dg = _group_table(self.shell_groups)[z[donor[d]]]
            labels = (seg[donor[d]] * n_donor_groups + dg) * n_nb + _group_table(self.donor_env_groups)[numbers[others[o]]]
            parts.append(_segment_sum(labels, gauss, n_mol * n_donor_groups * n_nb).reshape(n_mol, -1))
        return parts


#: Atoms per block of :meth:`WACSF.create_batch` (bounds the pair arrays to some tens of MB).
BLOCK_ATOMS = 2048


def _shifted_grid(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Widths ``eta = 1/(2 dr^2)`` and centres ``mu = linspace(lo, hi, n)`` of a shifted Gaussian grid."""
    mu = np.linspace(lo, hi, n)
    dr = mu[1] - mu[0] if n > 1 else 1.0
    return np.full(n, 1.0 / (2.0 * dr**2)), mu


def _segment_sum(labels: np.ndarray, rows: np.ndarray, n_labels: int) -> np.ndarray:
    """Sum of the ``rows`` (n, ...) with each label in ``0..n_labels-1``: an (n_labels, ...) array (zeros where none)."""
    out = np.zeros((n_labels, *rows.shape[1:]))
    if len(labels) == 0:
        return out
    if np.all(labels[1:] >= labels[:-1]):
        ordered, rows_ordered = labels, rows
    else:
        order = np.argsort(labels, kind="stable")
        ordered, rows_ordered = labels[order], rows[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    out[ordered[starts]] = np.add.reduceat(rows_ordered, starts, axis=0)
    return out


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in lengths])`` without a Python loop."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths, lengths)


def _close_pairs(vec: np.ndarray, r2: np.ndarray, seg: np.ndarray, n_mol: int, r_cut: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs j < k of the vectors ``vec`` (n, 3) in the same molecule (``seg``, sorted), with their dot products
    and squared distances ``|vec_j - vec_k|^2``, molecule by molecule in triangle order; with ``r_cut``, only those
    closer than it. ``r2`` are the squared lengths. Computed on each molecule's Gram matrix (one batched matmul)."""
    counts = np.bincount(seg, minlength=n_mol)
    n = int(counts.max()) if len(seg) else 0
    starts = np.cumsum(counts) - counts
    local = np.arange(len(seg)) - starts[seg]
    padded = np.zeros((n_mol, n, 3))
    padded[seg, local] = vec
    length2 = np.zeros((n_mol, n))
    length2[seg, local] = r2
    gram = padded @ padded.transpose(0, 2, 1)
    index = np.arange(n)
    mask = (index[:, None] < index[None, :]) & (index[None, None, :] < counts[:, None, None])  # j < k < count
    if r_cut is None:
        mol, j, k = np.nonzero(mask)
        dot = gram[mol, j, k]
        dist2 = (length2[mol, j] + length2[mol, k]) - 2.0 * dot
    else:
        dist2 = (length2[:, :, None] + length2[:, None, :]) - 2.0 * gram
        mask &= dist2 < r_cut**2
        mol, j, k = np.nonzero(mask)
        dot, dist2 = gram[mol, j, k], dist2[mol, j, k]
    return starts[mol] + j, starts[mol] + k, dot, np.maximum(dist2, 0.0)


def _pairs_across(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a, b) of an item of list A and one of list B in the same group (``counts_*`` items per group)."""
    seg_a = np.repeat(np.arange(len(counts_a)), counts_a)
    n = counts_b[seg_a]
    a = np.repeat(np.arange(len(seg_a)), n)
    return a, np.repeat((np.cumsum(counts_b) - counts_b)[seg_a], n) + _ranges(n)


def _powers(base: np.ndarray, exponents: np.ndarray) -> dict[float, np.ndarray]:
    """``base ** e`` for each exponent: repeated squaring for positive integers (no log/exp), ``np.power`` otherwise."""
    squares = {1: base}
    out: dict[float, np.ndarray] = {}
    for e in map(float, exponents):
        if e in out:
            continue
        if e != int(e) or e < 1:
            out[e] = np.power(base, e)
            continue
        result, bit, n = None, 1, int(e)
        while n:
            if bit not in squares:
                squares[bit] = squares[bit // 2] * squares[bit // 2]
            if n & 1:
                result = squares[bit] if result is None else result * squares[bit]
            n >>= 1
            bit *= 2
        out[e] = result
    return out


def _cosine_cutoff(r: np.ndarray, r_cut: float) -> np.ndarray:
    return np.where(r < r_cut, 0.5 * (np.cos(np.pi * np.minimum(r, r_cut) / r_cut) + 1.0), 0.0)


@lru_cache(maxsize=32)
def _group_table(groups: tuple[str, ...]) -> np.ndarray:
    """Group index of every atomic number; atoms in no group get the last ('other') index."""
    table = np.full(len(atomic_numbers) + 1, len(groups), dtype=np.int64)
    for g, group in enumerate(groups):
        for sym in group.split(","):
            table[atomic_numbers[sym.strip()]] = g
    return table


def _group_names(groups: tuple[str, ...]) -> list[str]:
    return [*(g.replace(",", "") for g in groups), "other"] if groups else []


#: Named settings. ``xanesnet`` and ``xanesnet-2021`` reproduce the published
#: tools' vectors, quirks included; ``default`` is this project's best validated setting.
PRESETS: dict[str, WACSF] = {
    "xanesnet": WACSF(r_min=1.0, r_max=6.0, n_g2=16, n_g4=32, lambdas=(1.0, -1.0), zetas=(1.0,),
                      weight_scale=0.1, clip_cutoff=False, g4_grid_points=32),
    "xanesnet-2021": WACSF(r_min=0.0, r_max=6.0, n_g2=32, n_g4=64, lambdas=(1.0, -1.0), zetas=(1.0, 2.0, 4.0, 8.0),
                           weight_scale=1.0, clip_cutoff=False, g4_grid_points=64),
    "plain": WACSF(),
    "default": WACSF(element_groups=("H", "C", "N", "O", "P,S,As,Se", "F,Cl,Br,I"), angular_groups=("H", "C", "N", "O"),
                     shell_groups=("C", "N", "O"), donor_env_groups=("H", "C", "N", "O")),
}
