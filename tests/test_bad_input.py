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


# --------------------------------------------------------------------------- spectra (P1-P6)

FEFF_HEADER = "# FEFF10 (feff10-rs 0.2.4) K-edge XANES of Fe in X\n# cards: XANES 4.0 | SCF 2.5 0 6 | FMS 4.0\n"
FEFF_COLUMNS_LINE = "# omega  e  k  mu  mu0  chi\n"


def _feff_table(n: int = 60) -> np.ndarray:
    omega = np.linspace(7100.0, 7180.0, n)
    e = omega - 7112.5
    mu = 1.0 / (1.0 + np.exp(-(omega - 7120.0) / 2.0)) + 0.05 * np.sin(omega / 3.0)
    return np.column_stack([omega, e, np.sign(e) * np.sqrt(np.abs(e) / 3.81), mu, mu * 0.9, mu * 0.1])


def _table_text(table: np.ndarray, header: str = "") -> str:
    return header + "".join(" ".join(f"{v:.6e}" for v in row) + "\n" for row in table)


def _two_column(**points) -> str:
    t = _feff_table()[:, [0, 3]]
    for k, (col, v) in points.items():
        t[int(k[1:]), col] = v
    return _table_text(t)


BAD_SPECTRA = {
    # P1/P2: absurd intensities are refused at reading, naming the file (not as a calibration error later)
    "p1_huge.txt": (_two_column(i20=(1, 1e200)), r"intensity 1e\+200 at point 21 is absurd \(beyond 1e\+09 in size\)$"),
    "p2_big.txt": (_two_column(i20=(1, 1e20)), r"intensity 1e\+20 at point 21 is absurd"),
    "p2_negative.txt": (_two_column(i20=(1, -1e12)), r"intensity -1e\+12 at point 21 is absurd"),
    # P3: absurd energies
    "p3_energy.txt": (_two_column(i59=(0, 1e9)), r"energy 1e\+09 eV at point 60 is absurd \(beyond 1e\+06 eV in size\)$"),
    "p3_overflow.txt": (_two_column(i59=(0, 1e400)), r", line 60: column 1 is inf \(NaN or infinite\)$"),
    # P5: NaN anywhere in a table (FEFF's e column sets the Fermi level)
    "p5_e.dat": (None, r", line 9: column 2 is nan \(NaN or infinite\)$"),
    "p5_k.dat": (None, r", line 9: column 3 is nan \(NaN or infinite\)$"),
    "p5_fermi.dat": (None, r"column e is not omega minus one Fermi level \(point 6: omega - e = -1e\+200 eV"),
    "p6_few.dat": (_table_text(_feff_table()[:, :4], FEFF_HEADER),
                   r"FEFF xmu.dat needs columns omega e k mu mu0 chi; found 4 unnamed columns"),
    "fdmnes_header.txt": ("  nan 26 1 = E_edge, Z, n_edge\n  Energy <xanes>\n 0 1\n 1 2\n",
                          r", line 1: FDMNES header value e_edge = nan is not a sane finite number$"),
}


def _bad_spectrum(tmp_path: Path, name: str) -> Path:
    text = BAD_SPECTRA[name][0]
    if text is None:
        t = _feff_table()
        if name == "p5_e.dat":
            t[5, 1] = np.nan
        elif name == "p5_k.dat":
            t[5, 2] = np.nan
        else:
            t[5, 1] = 1e200
        text = _table_text(t, FEFF_HEADER + FEFF_COLUMNS_LINE)
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(BAD_SPECTRA))
def test_bad_spectrum_is_refused_naming_file_and_problem(tmp_path, name):
    from xanesnet.io.spectra import read_spectrum

    path = _bad_spectrum(tmp_path, name)
    with pytest.raises(XanesnetError) as info:
        read_spectrum(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert re.search(BAD_SPECTRA[name][1], message), message


def test_feff_file_without_its_column_line_is_read_as_feff(tmp_path):
    """P6: the header line naming the columns is lost; the FEFF banner and six columns still make it FEFF."""
    from xanesnet.io.spectra import read_spectrum

    t = _feff_table()
    (tmp_path / "named.dat").write_text(_table_text(t, FEFF_HEADER + FEFF_COLUMNS_LINE))
    (tmp_path / "unnamed.dat").write_text(_table_text(t, FEFF_HEADER))
    named, unnamed = read_spectrum(tmp_path / "named.dat"), read_spectrum(tmp_path / "unnamed.dat")
    assert unnamed.meta["code"] == "feff" and unnamed.meta["e_fermi"] == pytest.approx(7112.5, abs=1e-3)
    np.testing.assert_array_equal(unnamed.intensity, named.intensity)
    np.testing.assert_allclose(unnamed.intensity, t[:, 3], rtol=1e-6)


def test_outlier_spectrum_in_a_training_set_is_refused(tmp_path):
    """P2's sibling below the absolute limit: one spectrum 10^5 times the others' scale is named, not trained on."""
    from xanesnet.data.dataset import load_spectra

    paths = []
    for k in range(4):
        t = _feff_table()[:, [0, 3]]
        if k == 2:
            t[10, 1] = 1e5
        paths.append(tmp_path / f"s{k}.txt")
        paths[-1].write_text(_table_text(t))
    with pytest.raises(XanesnetError, match=rf"^{re.escape(str(paths[2]))}: intensity reaches 1e\+05, .* times the typical"):
        load_spectra(paths)
    energy, y = load_spectra([p for k, p in enumerate(paths) if k != 2])
    assert y.shape == (3, 60)


def test_working_grid_is_sized_from_the_target_grid(tmp_path):
    """P3: a last energy of 5 10^5 eV no longer sizes the broadening grid; the target grid's values are unchanged."""
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.spectra import process

    t = _feff_table()[:, [0, 3]]
    far = np.vstack([t, [5e5, t[-1, 1]]])
    (tmp_path / "ok.txt").write_text(_table_text(t))
    (tmp_path / "far.txt").write_text(_table_text(far))
    settings = {"broadening": {"kind": "lorentzian", "width": 1.0, "extend": 0.0}, "grid": "absolute:7110:7170:61"}
    near, wide = process(read_spectrum(tmp_path / "ok.txt"), settings), process(read_spectrum(tmp_path / "far.txt"), settings)
    assert wide.e0 == pytest.approx(near.e0, abs=0.2)
    np.testing.assert_allclose(wide.intensity, near.intensity, atol=0.02 * np.ptp(near.intensity))
    with pytest.raises(XanesnetError, match=r"far.txt: spans 7100-500000 eV: broadening it on a 0.2 eV working grid needs "
                                            r"2,464,501 points \(limit 200,000\)"):
        process(read_spectrum(tmp_path / "far.txt"), {**settings, "grid": "relative:-10:50:61"})
    with pytest.raises(XanesnetError, match=r"far.txt: spans 7100-500000 eV: finding its edge on a 0.05 eV grid needs"):
        process(read_spectrum(tmp_path / "far.txt"), {"grid": "relative:-10:50:61"})


@pytest.mark.parametrize("settings, message", [
    ({"grid": "absolute:0:1:1000000000"}, r"grid: n must be an integer from 2 to 100,000"),
    ({"broadening": {"kind": "lorentzian", "extend": 1e12}}, r"broadening: extend must be at most 10000 in size"),
    ({"edge": {"smooth": 1e9}}, r"edge: smooth must be at most 100 in size"),
])
def test_processing_settings_that_would_allocate_absurdly_are_refused(settings, message):
    from xanesnet.spectra import ProcessSettings

    with pytest.raises(XanesnetError, match=message):
        ProcessSettings.from_dict(settings)
