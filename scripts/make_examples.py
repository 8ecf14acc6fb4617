"""Build the example molecules in data/examples/ from textbook geometries.

S in the comment line is the total spin quantum number (2 for high-spin Fe(II)).
Bond lengths are typical crystallographic values (Angstrom); angles are
idealised. Run: python scripts/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "data" / "examples"
MULTINUCLEAR = OUT.parent / "multinuclear"  # several atoms of the absorbing element: predict with --absorber Fe
OCTAHEDRON = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)


def write(name: str, formula: str, charge: int, spin: float, atoms: list[tuple[str, np.ndarray]], out: Path = OUT) -> None:
    metal = atoms[0][1]  # metal node degree: atoms bonded to the (first) metal
    mnd = sum(0 < np.linalg.norm(x - metal) < 2.6 and s != "H" for s, x in atoms)
    lines = [str(len(atoms)), f"CSD_code = {name} | q = {charge} | S = {spin} | Stoichiometry = {formula} | MND = {mnd}"]
    lines += [f"{s:<2} {x:14.8f} {y:14.8f} {z:14.8f}" for s, (x, y, z) in atoms]
    (out / f"{name}.xyz").write_text("\n".join(lines) + "\n")


def perpendicular(u: np.ndarray) -> np.ndarray:
    v = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    return v / np.linalg.norm(v)


def hexacyanoferrate() -> None:
    """[Fe(CN)6]4-: low-spin Fe(II), Fe-C 1.92, C-N 1.17."""
    atoms = [("Fe", np.zeros(3))]
    for u in OCTAHEDRON:
        atoms += [("C", 1.92 * u), ("N", (1.92 + 1.17) * u)]
    write("hexacyanoferrate", "C6FeN6", -4, 0, atoms)


def hexaaquairon() -> None:
    """[Fe(H2O)6]2+: high-spin Fe(II), Fe-O 2.12, O-H 0.96, H-O-H 104.5 deg, water plane containing Fe-O."""
    atoms = [("Fe", np.zeros(3))]
    half = np.radians(104.5 / 2)
    for u in OCTAHEDRON:
        o = 2.12 * u
        p = perpendicular(u)
        atoms.append(("O", o))
        for sign in (1, -1):
            atoms.append(("H", o + 0.96 * (np.cos(half) * u + sign * np.sin(half) * p)))
    write("hexaaquairon", "H12FeO6", 2, 2, atoms)


def ferrocene() -> None:
    """Fe(C5H5)2, eclipsed: Fe-ring centroid 1.66, C-C 1.42, C-H 1.08."""
    atoms = [("Fe", np.zeros(3))]
    radius = 1.42 / (2 * np.sin(np.pi / 5))
    for z in (1.66, -1.66):
        for k in range(5):
            phi = 2 * np.pi * k / 5
            ring = np.array([np.cos(phi), np.sin(phi), 0.0])
            atoms.append(("C", radius * ring + [0, 0, z]))
            atoms.append(("H", (radius + 1.08) * ring + [0, 0, z]))
    write("ferrocene", "C10H10Fe", 0, 0, atoms)


def iron_pentacarbonyl() -> None:
    """Fe(CO)5, trigonal bipyramid: Fe-C axial 1.81, equatorial 1.83, C-O 1.15."""
    atoms = [("Fe", np.zeros(3))]
    dirs = [(np.array([0, 0, 1.0]), 1.81), (np.array([0, 0, -1.0]), 1.81)]
    dirs += [(np.array([np.cos(a), np.sin(a), 0.0]), 1.83) for a in np.radians([0, 120, 240])]
    for u, d in dirs:
        atoms += [("C", d * u), ("O", (d + 1.15) * u)]
    write("iron_pentacarbonyl", "C5FeO5", 0, 0, atoms)


TETRAHEDRON = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
SQUARE = OCTAHEDRON[:4]


def ammine(u: np.ndarray, d: float) -> list[tuple[str, np.ndarray]]:
    """NH3 on the axis ``u`` at ``d`` from the metal: N-H 1.01, M-N-H 109.5 deg, staggered."""
    n = d * u
    p = perpendicular(u)
    q = np.cross(u, p)
    theta = np.radians(180 - 109.47)
    out = [("N", n)]
    for phi in np.radians([0, 120, 240]):
        out.append(("H", n + 1.01 * (np.cos(theta) * u + np.sin(theta) * (np.cos(phi) * p + np.sin(phi) * q))))
    return out


def aqua(u: np.ndarray, d: float) -> list[tuple[str, np.ndarray]]:
    """H2O on the axis ``u`` at ``d`` from the metal: O-H 0.96, H-O-H 104.5 deg, water plane containing M-O."""
    o = d * u
    p = perpendicular(u)
    half = np.radians(104.5 / 2)
    return [("O", o)] + [("H", o + 0.96 * (np.cos(half) * u + s * np.sin(half) * p)) for s in (1, -1)]


def tetraamminecopper() -> None:
    """[Cu(NH3)4]2+: Cu(II) d9, square planar, Cu-N 2.03."""
    atoms = [("Cu", np.zeros(3))]
    for u in SQUARE:
        atoms += ammine(u, 2.03)
    write("tetraamminecopper", "CuH12N4", 2, 0.5, atoms)


def tetrachlorozincate() -> None:
    """[ZnCl4]2-: Zn(II) d10, tetrahedral, Zn-Cl 2.27."""
    write("tetrachlorozincate", "Cl4Zn", -2, 0, [("Zn", np.zeros(3))] + [("Cl", 2.27 * u) for u in TETRAHEDRON])


def tetracyanonickelate() -> None:
    """[Ni(CN)4]2-: low-spin Ni(II), square planar, Ni-C 1.86, C-N 1.16."""
    atoms = [("Ni", np.zeros(3))]
    for u in SQUARE:
        atoms += [("C", 1.86 * u), ("N", (1.86 + 1.16) * u)]
    write("tetracyanonickelate", "C4N4Ni", -2, 0, atoms)


def hexaamminecobalt() -> None:
    """[Co(NH3)6]3+: low-spin Co(III), octahedral, Co-N 1.96."""
    atoms = [("Co", np.zeros(3))]
    for u in OCTAHEDRON:
        atoms += ammine(u, 1.96)
    write("hexaamminecobalt", "CoH18N6", 3, 0, atoms)


def titanium_tetrachloride() -> None:
    """TiCl4: Ti(IV) d0, tetrahedral, Ti-Cl 2.17."""
    write("titanium_tetrachloride", "Cl4Ti", 0, 0, [("Ti", np.zeros(3))] + [("Cl", 2.17 * u) for u in TETRAHEDRON])


def hexaaquavanadium() -> None:
    """[V(H2O)6]3+: V(III) d2 (S = 1), octahedral, V-O 1.99."""
    atoms = [("V", np.zeros(3))]
    for u in OCTAHEDRON:
        atoms += aqua(u, 1.99)
    write("hexaaquavanadium", "H12O6V", 3, 1, atoms)


def chromium_hexacarbonyl() -> None:
    """Cr(CO)6: Cr(0), octahedral, Cr-C 1.91, C-O 1.14."""
    atoms = [("Cr", np.zeros(3))]
    for u in OCTAHEDRON:
        atoms += [("C", 1.91 * u), ("O", (1.91 + 1.14) * u)]
    write("chromium_hexacarbonyl", "C6CrO6", 0, 0, atoms)


def permanganate() -> None:
    """[MnO4]-: Mn(VII) d0, tetrahedral, Mn-O 1.63."""
    write("permanganate", "MnO4", -1, 0, [("Mn", np.zeros(3))] + [("O", 1.63 * u) for u in TETRAHEDRON])


def tetrachloroferrate() -> None:
    """[FeCl4]-: high-spin Fe(III), tetrahedral, Fe-Cl 2.19."""
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    write("tetrachloroferrate", "Cl4Fe", -1, 2.5, [("Fe", np.zeros(3))] + [("Cl", 2.19 * u) for u in tet])


def diiron_nonacarbonyl() -> None:
    """Fe2(CO)9, D3h, two equivalent Fe: Fe-Fe 2.523; three bridging CO (Fe-C 2.016, C-O 1.176, in the plane
    midway between the Fe); three terminal CO per Fe (Fe-C 1.838, C-O 1.156, C-Fe-C 96.9 deg), staggered."""
    half = 2.523 / 2
    atoms = [("Fe", np.array([0.0, 0.0, half])), ("Fe", np.array([0.0, 0.0, -half]))]
    r_bridge = np.sqrt(2.016**2 - half**2)
    for phi in np.radians([0.0, 120.0, 240.0]):
        u = np.array([np.cos(phi), np.sin(phi), 0.0])
        atoms += [("C", r_bridge * u), ("O", (r_bridge + 1.176) * u)]
    cos_a = np.sqrt((1.0 + 2.0 * np.cos(np.radians(96.9))) / 3.0)  # tilt from the Fe-Fe axis giving C-Fe-C 96.9 deg
    for sign in (1.0, -1.0):
        for phi in np.radians([60.0, 180.0, 300.0]):
            u = np.array([np.sqrt(1 - cos_a**2) * np.cos(phi), np.sqrt(1 - cos_a**2) * np.sin(phi), sign * cos_a])
            fe = np.array([0.0, 0.0, sign * half])
            atoms += [("C", fe + 1.838 * u), ("O", fe + (1.838 + 1.156) * u)]
    write("diiron_nonacarbonyl", "C9Fe2O9", 0, 0, atoms, out=MULTINUCLEAR)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    MULTINUCLEAR.mkdir(parents=True, exist_ok=True)
    diiron_nonacarbonyl()
    for build in (hexacyanoferrate, hexaaquairon, ferrocene, iron_pentacarbonyl, tetrachloroferrate, tetraamminecopper,
                  tetrachlorozincate, tetracyanonickelate, hexaamminecobalt, titanium_tetrachloride, hexaaquavanadium,
                  chromium_hexacarbonyl, permanganate):
        build()
    print(f"wrote {len(list(OUT.glob('*.xyz')))} examples to {OUT}")
