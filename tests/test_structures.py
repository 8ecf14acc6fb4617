"""Structure files of every kind, absorber resolution, and the exact error for each bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from conftest import EXAMPLES

from xanesnet.errors import XanesnetError
from xanesnet.io.structures import check_overlaps, find_structure_files, read_structure, resolve_absorber

FERROCENE = (EXAMPLES / "ferrocene.xyz").read_text()


def write(tmp_path, text, name="mol.xyz"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_xanesnet_style_atomic_numbers(fe_sample):
    path = fe_sample / "xyz" / "ABEMAX_C33H60FeN4Si4.xyz"
    s = read_structure(path)
    assert len(s) == 102 and s.numbers[0] == 26 and s.name == "ABEMAX_C33H60FeN4Si4"
    assert resolve_absorber(s) == 0


def test_charge_from_xanesnet_style_name(fe_sample):
    s = read_structure(next((fe_sample / "xyz").glob("*(1+).xyz")))
    assert s.charge == 1.0


def test_tmqm_comment_keeps_charge_and_spin():
    s = read_structure(EXAMPLES / "hexaaquairon.xyz")
    assert (s.charge, s.spin) == (2.0, 2.0)
    assert s.symbols.count("H") == 12


def test_symbols_and_numbers_give_the_same_structure(tmp_path):
    s1 = read_structure(EXAMPLES / "ferrocene.xyz")
    lines = FERROCENE.splitlines()
    numeric = lines[:2] + [f"{z} " + " ".join(l.split()[1:]) for z, l in zip(s1.numbers, lines[2:])]
    s2 = read_structure(write(tmp_path, "\n".join(numeric)))
    np.testing.assert_array_equal(s1.numbers, s2.numbers)
    np.testing.assert_array_equal(s1.positions, s2.positions)


def test_any_ase_format(tmp_path):
    from ase import Atoms
    from ase.io import write as ase_write

    s = read_structure(EXAMPLES / "hexaaquairon.xyz")
    path = tmp_path / "aqua.extxyz"
    ase_write(path, Atoms(numbers=s.numbers, positions=s.positions, info={"charge": 2, "spin": 2}))
    back = read_structure(path)
    np.testing.assert_array_equal(back.numbers, s.numbers)
    np.testing.assert_allclose(back.positions, s.positions, atol=1e-8)
    assert (back.charge, back.spin, back.name) == (2.0, 2.0, "aqua")


def test_a_molecule_in_a_periodic_box_reads_as_the_molecule(tmp_path):
    """Extended xyz with a cell (a DFT code's output), with vacuum around the molecule: same descriptor as the plain file."""
    import ase.io

    from xanesnet.descriptors import preset

    atoms = ase.io.read(EXAMPLES / "ferrocene.xyz")
    atoms.set_cell([30.0, 30.0, 30.0])
    atoms.center()
    atoms.pbc = True
    ase.io.write(tmp_path / "boxed.xyz", atoms, format="extxyz")
    assert "Lattice=" in (tmp_path / "boxed.xyz").read_text().splitlines()[1]
    plain, boxed = read_structure(EXAMPLES / "ferrocene.xyz"), read_structure(tmp_path / "boxed.xyz")
    d = preset("default")
    np.testing.assert_allclose(d.create(boxed, resolve_absorber(boxed)), d.create(plain, resolve_absorber(plain)), atol=1e-12)


def test_pdb_placeholder_cell_is_not_a_crystal(tmp_path):
    """PDB files of molecules often carry CRYST1 1.000 1.000 1.000 (no crystal): read as the molecule."""
    import ase.io

    ase.io.write(tmp_path / "fc.pdb", ase.io.read(EXAMPLES / "ferrocene.xyz"))
    lines = [line for line in (tmp_path / "fc.pdb").read_text().splitlines() if not line.startswith("CRYST1")]
    (tmp_path / "fc.pdb").write_text("\n".join(["CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1",
                                                *lines]) + "\n")
    assert ase.io.read(tmp_path / "fc.pdb").pbc.all()  # ase takes the placeholder for a periodic cell
    s = read_structure(tmp_path / "fc.pdb")
    np.testing.assert_allclose(s.positions, read_structure(EXAMPLES / "ferrocene.xyz").positions, atol=1e-3)


@pytest.mark.parametrize("name,cell", [("crystal.cif", 3.0), ("tight.xyz", 9.0)])
def test_periodic_structures_with_near_images_are_refused(tmp_path, name, cell):
    """A crystal (or a molecule in too small a box) is not an isolated molecule: one line, never a silent cut at the cell edge."""
    import ase.io

    atoms = ase.io.read(EXAMPLES / "ferrocene.xyz") if name.endswith(".xyz") else Atoms("FeO", positions=[[0, 0, 0], [1.6, 0, 0]])
    atoms.set_cell([cell] * 3)
    atoms.center()
    atoms.pbc = True
    ase.io.write(tmp_path / name, atoms, format="extxyz" if name.endswith(".xyz") else None)
    with pytest.raises(XanesnetError, match=rf"{re.escape(name)}: periodic structure \(pbc = T T T\): atom \d+ \(\w+\) has a "
                                            r"periodic image of atom \d+ within 8 A; xanesnet predicts isolated molecules"):
        read_structure(tmp_path / name)


def test_extra_columns_are_ignored(tmp_path):
    lines = FERROCENE.splitlines()
    text = "\n".join(lines[:2] + [l + " 0.1 0.2 0.3" for l in lines[2:]])
    s = read_structure(write(tmp_path, text))
    np.testing.assert_allclose(s.positions, read_structure(EXAMPLES / "ferrocene.xyz").positions)


@pytest.mark.parametrize("text,message", [
    ("", r"mol\.xyz: empty file$"),
    ("two\nname\nFe 0 0 0\n", r"mol\.xyz: line 1 should be the atom count, found 'two'$"),
    ("3\nname\nFe 0 0 0\nO 0 0 2\n", r"mol\.xyz: line 1 says 3 atoms but 2 coordinate rows follow$"),
    ("2\nname\nFe 0 0 0\nO 0 zero 2\n", r"mol\.xyz, line 4: atom 2: non-numeric coordinate in 'O 0 zero 2'$"),
    ("2\nname\nFe 0 0 0\nO 0 nan 2\n", r"mol\.xyz: atom 2: coordinate is NaN or infinite$"),
    ("2\nname\nFe 0 0 0\nQq 0 0 2\n", r"mol\.xyz: atom 2: unknown element 'Qq'$"),
    ("2\nname\nFe 0 0 0\n250 0 0 2\n", r"mol\.xyz: atom 2: unknown atomic number 250$"),
    ("2\nname\nFe 0 0 0\nO 0 0\n", r"mol\.xyz, line 4: atom 2: expected 'element x y z', found 'O 0 0'$"),
])
def test_bad_structure_files(tmp_path, text, message):
    with pytest.raises(XanesnetError, match=message):
        read_structure(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(XanesnetError, match=r"nothere\.xyz: no such file$"):
        read_structure(tmp_path / "nothere.xyz")


def test_unreadable_other_format(tmp_path):
    p = tmp_path / "mol.pdb"
    p.write_text("garbage that is not a structure\n")
    with pytest.raises(XanesnetError, match=r"mol\.pdb: "):
        read_structure(p)


def test_absorber_by_index_and_symbol():
    s = read_structure(EXAMPLES / "hexaaquairon.xyz")
    assert resolve_absorber(s, 0) == 0 and resolve_absorber(s, "0") == 0 and resolve_absorber(s, "Fe") == 0
    assert resolve_absorber(s, -1) == len(s) - 1


@pytest.mark.parametrize("absorber,message", [
    (None, r"two\.xyz: ambiguous absorber: 2 first-row transition metals \(Fe \(atom 0\), Cu \(atom 1\)\); pass --absorber INDEX$"),
    ("O", r"two\.xyz: absorber element O does not occur in the structure$"),
    (5, r"two\.xyz: absorber index 5 is out of range for 3 atoms$"),
    ("Xy", r"two\.xyz: absorber 'Xy' is neither an atom index nor an element symbol$"),
])
def test_absorber_errors(tmp_path, absorber, message):
    s = read_structure(write(tmp_path, "3\nx\nFe 0 0 0\nCu 0 0 2.5\nC 0 2 0\n", "two.xyz"))
    with pytest.raises(XanesnetError, match=message):
        resolve_absorber(s, absorber)


def test_absorber_sites_of_an_element_that_occurs_twice(tmp_path):
    from xanesnet.io.structures import absorber_sites

    s = read_structure(write(tmp_path, "4\nx\nFe 0 0 0\nO 0 0 2\nFe 0 0 4\nO 0 2 0\n", "fe2.xyz"))
    assert absorber_sites(s, "Fe") == [0, 2] and absorber_sites(s, "fe") == [0, 2]
    assert absorber_sites(s, 2) == [2] and absorber_sites(s, "-2") == [2]
    with pytest.raises(XanesnetError, match=r"fe2\.xyz: ambiguous absorber: 2 first-row transition metals \(Fe \(atom 0\), "
                                            r"Fe \(atom 2\)\); pass --absorber INDEX, or --absorber Fe to average over all of them$"):
        absorber_sites(s)
    with pytest.raises(XanesnetError, match=r"fe2\.xyz: ambiguous absorber: Fe occurs 2 times \(atoms 0, 2\); pass --absorber "
                                            r"INDEX \(xanesnet predict averages over all of them\)$"):
        resolve_absorber(s, "Fe")  # one site per spectrum: training, featurize, evaluate


def test_no_transition_metal(tmp_path):
    s = read_structure(write(tmp_path, "2\nx\nC 0 0 0\nO 0 0 1.2\n", "co.xyz"))
    with pytest.raises(XanesnetError, match=r"co\.xyz: no first-row transition metal \(Ti-Zn\) to use as absorber; pass --absorber$"):
        resolve_absorber(s)


def test_repeated_element_symbol_is_ambiguous(tmp_path):
    s = read_structure(write(tmp_path, "3\nx\nFe 0 0 0\nO 0 0 2\nO 0 2 0\n", "w.xyz"))
    with pytest.raises(XanesnetError, match=r"ambiguous absorber: O occurs 2 times \(atoms 1, 2\)"):
        resolve_absorber(s, "O")


def test_overlapping_atoms(tmp_path):
    with pytest.raises(XanesnetError, match=r"o\.xyz: atoms 1 and 2 are 0\.300 A apart \(closer than 0\.5 A\): overlapping atoms$"):
        read_structure(write(tmp_path, "3\nx\nFe 0 0 0\nO 0 0 2\nO 0 0 2.3\n", "o.xyz"))
    s = read_structure(write(tmp_path, "3\nx\nFe 0 0 0\nO 0 0 2\nO 0 0 2.6\n", "p.xyz"))
    with pytest.raises(XanesnetError, match=r"p\.xyz: atoms 1 and 2 are 0\.600 A apart \(closer than 0\.7 A\): overlapping atoms$"):
        check_overlaps(s, min_distance=0.7)


def test_find_structure_files(tmp_path):
    (tmp_path / "b.xyz").write_text(FERROCENE)
    (tmp_path / "a.xyz").write_text(FERROCENE)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_structure_files([tmp_path])] == ["a.xyz", "b.xyz"]
    with pytest.raises(XanesnetError, match=r"missing: no such file or directory$"):
        find_structure_files([tmp_path / "missing"])


@pytest.mark.parametrize("extra", ["26 0.0 0.0 0.0\n", "8 0.0 0.0 2.0\n8 0.0 2.0 0.0\n"])
def test_rows_past_the_declared_count_are_read_as_xanesnet_reads_them(tmp_path, caplog, extra):
    """XANESNET's own test structures repeat the last row after the declared atom count: read the declared atoms, warn once."""
    text = "3\nname\n26 0.0 0.0 0.0\n8 0.0 0.0 1.9\n7 1.8 0.0 0.0\n"
    exact = read_structure(write(tmp_path, text, "exact.xyz"))
    with caplog.at_level("WARNING", logger="xanesnet.io.structures"):
        s = read_structure(write(tmp_path, text + extra))
    np.testing.assert_array_equal(s.numbers, exact.numbers)
    np.testing.assert_array_equal(s.positions, exact.positions)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    n_extra = extra.count("\n")
    assert warnings == [f"{tmp_path / 'mol.xyz'}: line 1 says 3 atoms; read those and ignored the {n_extra} row(s) after them"]
