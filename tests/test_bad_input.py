"""Bad input ends in one XanesnetError naming the file and the problem: one test per class of failure found by fuzzing.

Structures (S1-S9): element tokens, charge and spin fields, cells, overlapping atoms, several structures in one
file, PBC flags, impossible packings. Each is read through :func:`read_structure` (the one validation layer) and a
few go through the CLI to check the exit code, the single line and that nothing is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

from xanesnet.cli import main
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import read_structure

FERROCENE = (EXAMPLES / "ferrocene.xyz").read_text()
_N = FERROCENE.splitlines()[0].strip()
_BODY = "\n".join(FERROCENE.splitlines()[2:]) + "\n"


def _extxyz(fields: str, body: str = _BODY, n: str = _N) -> str:
    return f"{n}\n{fields} Properties=species:S:1:pos:R:3\n{body}"


def _packed() -> str:
    g = np.arange(-3.0, 3.01, 0.7)
    p = np.array(np.meshgrid(g, g, g)).reshape(3, -1).T
    p = p[np.linalg.norm(p, axis=1) > 0.6]
    return f"{len(p) + 1}\nx\nFe 0 0 0\n" + "".join(f"C {a:.3f} {b:.3f} {c:.3f}\n" for a, b, c in p)


def _ase_text(kind: str) -> str:
    import io

    import ase.io

    atoms = ase.io.read(EXAMPLES / "ferrocene.xyz")
    buf = io.StringIO()
    if kind == "sdf":
        ase.io.write(buf, atoms, format="sdf")
        return buf.getvalue() * 2
    ase.io.write(buf, [atoms, atoms], format="proteindatabank")
    return buf.getvalue()


_CELL = 'Lattice="30 0 0 0 30 0 0 0 30"'
_IMAGE = r"has a periodic image of atom \d+ within 8 A; xanesnet predicts isolated molecules"
#: name -> (file text, regex the message must match after "PATH: ")
BAD_STRUCTURES = {
    # S1: element tokens that are neither a symbol nor a plain atomic number
    "s1_signs.xyz": ("3\nx\n+-26 0 0 0\n6 1.9 0 0\n8 3.0 0 0\n", r"atom 1: unknown element '\+-26'"),
    "s1_minus.xyz": ("3\nx\n-26 0 0 0\n6 1.9 0 0\n8 3.0 0 0\n", r"atom 1: unknown element '-26'"),
    "s1_super.xyz": ("3\nx\n²⁶ 0 0 0\n6 1.9 0 0\n8 3.0 0 0\n", r"atom 1: unknown element '²⁶'"),
    "s1_sub.xyz": ("3\nx\nFe 0 0 0\n₆ 1.9 0 0\n8 3.0 0 0\n", r"atom 2: unknown element '₆'"),
    "s1_huge.xyz": ("3\nx\n" + "9" * 5000 + " 0 0 0\n6 1.9 0 0\n8 3.0 0 0\n", r"atom 1: unknown element '9999"),
    "s1_zero.xyz": ("3\nx\n0 0 0 0\n6 1.9 0 0\n8 3.0 0 0\n", r"atom 1: unknown atomic number 0"),
    "s1_dummy.xyz": (_extxyz(_CELL, body=_BODY.replace("Fe", "X", 1)), r"atom 1: atomic number 0 is not an element"),
    # S2: charge and spin fields of extended xyz that are not one number
    "s2_charge.xyz": (_extxyz(_CELL + " charge=abc"), r"charge='abc' in the comment line is not a number"),
    "s2_spin.xyz": (_extxyz(_CELL + " S=abc"), r"S='abc' in the comment line is not a number"),
    "s2_q.xyz": (_extxyz(_CELL + " q=abc"), r"q='abc' in the comment line is not a number"),
    "s2_pair.xyz": (_extxyz(_CELL + ' charge="1 2"'), r"charge='\[1 2\]' in the comment line is not a number"),
    "s2_bool.xyz": (_extxyz(_CELL + " charge=T"), r"charge='True' in the comment line is not a number"),
    "s2_inf.xyz": (_extxyz(_CELL + " spin=1e400"), r"spin inf is impossible for a molecule with 96 electrons"),
    "s2_absurd.xyz": ("3\nCSD_code = X | q = 9999 | S = 0\nFe 0 0 0\nC 1.9 0 0\nO 3.0 0 0\n",
                      r"charge 9999 is impossible for a molecule with 40 electrons"),
    # S3: cells too small, zero, flat, infinite or NaN: refused before any neighbour search
    "s3_tiny.xyz": (_extxyz('Lattice="0.2 0 0 0 0.2 0 0 0 0.2"'), r"atom 0 \(Fe\) " + _IMAGE + r" \(the cell repeats every 0.2 A\)"),
    "s3_small.xyz": (_extxyz('Lattice="0.01 0 0 0 0.01 0 0 0 0.01"'), _IMAGE + r" \(the cell repeats every 0.01 A\)"),
    "s3_skew.xyz": (_extxyz('Lattice="30 0 0 30 0.01 0 0 0 30"'), _IMAGE + r" \(the cell repeats every 0.01 A\)"),
    "s3_zero.xyz": (_extxyz('Lattice="0 0 0 0 0 0 0 0 0"'), r"with a zero or flat cell"),
    "s3_flat.xyz": (_extxyz('Lattice="30 0 0 0 30 0 30 30 0"'), r"with a zero or flat cell"),
    "s3_inf.xyz": (_extxyz('Lattice="inf 0 0 0 30 0 0 0 30"'), r"with a NaN, infinite or absurdly large cell"),
    "s3_nan.xyz": (_extxyz('Lattice="nan 0 0 0 30 0 0 0 30"'), r"with a NaN, infinite or absurdly large cell"),
    "s3_huge.xyz": (_extxyz('Lattice="1e300 0 0 0 1e300 0 0 0 1e300"'), r"with a NaN, infinite or absurdly large cell"),
    "s3_near.xyz": (_extxyz('Lattice="9 0 0 0 9 0 0 0 9"'), _IMAGE + ": cut out"),
    # S5/S6: atoms at distance 0 (on the metal or on each other) or closer than 0.5 A anywhere
    "s5_on_metal.xyz": ("3\nx\nFe 0 0 0\nC 0 0 0\nO 0 0 2\n", r"atoms 0 and 1 are at the same position \(closer than 0.5 A\)"),
    "s6_duplicate.xyz": ("4\nx\nFe 0 0 0\nC 0 0 2\nO 0 0 3.1\nO 0 0 3.1\n", r"atoms 2 and 3 are at the same position"),
    "s6_close.xyz": ("4\nx\nFe 0 0 0\nC 0 0 2\nO 0 0 3.1\nO 0 0.3 3.1\n", r"atoms 2 and 3 are 0.300 A apart"),
    "s6_far_from_metal.xyz": ("4\nx\nFe 0 0 0\nC 0 0 2\nH 0 0 20\nH 0 0 20.1\n", r"atoms 2 and 3 are 0.100 A apart"),
    # S7: several structures in one file are refused, never read as one of them
    "s7_frames.xyz": (_extxyz(_CELL) * 2, r"2 structures \(frames or models\) in one file"),
    "s7_plain.xyz": (FERROCENE * 2, r"several structures in one file \(a second frame starts at line 24\)"),
    "s7_models.pdb": (None, r"2 structures \(frames or models\) in one file"),
    "s7_records.sdf": (None, r"2 structures \(records ending in \$\$\$\$\) in one file"),
    # S8: a 1 A cell in extended xyz is a crystal cell (the PDB placeholder rule is PDB's alone); pbc honoured
    "s8_unit_cell.xyz": (_extxyz('Lattice="1 0 0 0 1 0 0 0 1" pbc="T T T"'), _IMAGE + r" \(the cell repeats every 1 A\)"),
    "s8_partial.xyz": (_extxyz('Lattice="30 0 0 0 30 0 0 0 1" pbc="F F T"'), r"pbc = F F T\): " + r".*repeats every 1 A"),
    # S9: impossible packings and sizes, refused before any O(n^2) array
    "s9_packed.xyz": (_packed(), r"has \d+ other atoms within 2 A \(molecules have at most about 12\): a physically impossible packing"),
    "s9_count.xyz": ("100000000\nx\nFe 0 0 0\n", r"atom count 100000000 is more than the 100,000 atoms xanesnet accepts"),
    "s9_far.xyz": ("2\nx\nFe 0 0 0\nC 1e200 0 0\n", r"atom 2: coordinate 1e\+200 A is beyond 100000 A"),
}


def _write(tmp_path: Path, name: str) -> Path:
    text = BAD_STRUCTURES[name][0]
    if text is None:
        text = _ase_text(name.rsplit(".", 1)[1])
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(BAD_STRUCTURES))
def test_bad_structure_is_refused_naming_file_and_problem(tmp_path, name):
    path = _write(tmp_path, name)
    with pytest.raises(XanesnetError) as info:
        read_structure(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert re.search(BAD_STRUCTURES[name][1], message), message


@pytest.mark.parametrize("cell", ['Lattice="30 0 0 0 30 0 0 0 30" pbc="F F F"', 'Lattice="1e4 0 0 0 1e4 0 0 0 1e4"',
                                  'Lattice="30 0 0 0 30 0 0 0 1" pbc="T T F"'])
def test_molecule_in_a_box_or_without_periodicity_is_read(tmp_path, cell):
    path = tmp_path / "box.xyz"
    path.write_text(_extxyz(cell))
    s = read_structure(path)
    assert len(s) == int(_N) and np.allclose(s.positions, read_structure(EXAMPLES / "ferrocene.xyz").positions)


def test_large_molecule_is_validated_without_a_dense_distance_array(tmp_path):
    """20,000 atoms in a loose cubic lattice (2 A apart) pass in O(n log n); one duplicated atom is found."""
    g = np.arange(28) * 2.0
    p = np.array(np.meshgrid(g, g, g)).reshape(3, -1).T[:20000]
    rows = "".join(f"C {a:.1f} {b:.1f} {c:.1f}\n" for a, b, c in p)
    (tmp_path / "big.xyz").write_text(f"{len(p)}\nx\n{rows}")
    assert len(read_structure(tmp_path / "big.xyz")) == 20000
    (tmp_path / "dup.xyz").write_text(f"{len(p) + 1}\nx\n{rows}C {p[-1, 0]} {p[-1, 1]} {p[-1, 2]}\n")
    with pytest.raises(XanesnetError, match=r"are at the same position"):
        read_structure(tmp_path / "dup.xyz")


@pytest.mark.parametrize("name", ["s1_signs.xyz", "s2_charge.xyz", "s3_tiny.xyz", "s7_frames.xyz", "s9_packed.xyz"])
def test_cli_bad_structure_one_line_exit_2_nothing_written(tmp_path, capsys, name):
    path = _write(tmp_path, name)
    out = tmp_path / "out"
    code = main(["predict", str(path), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"xanesnet predict: error: {path}: ")
    assert not out.exists()
