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


def refused(read, path: Path, pattern: str) -> str:
    """``read(path)`` raises one XanesnetError: one line, naming ``path`` first, matching ``pattern``."""
    with pytest.raises(XanesnetError) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and len(message) < 400, message
    assert re.search(pattern, message), message
    return message


@pytest.mark.parametrize("name", sorted(BAD_STRUCTURES))
def test_bad_structure_is_refused_naming_file_and_problem(tmp_path, name):
    refused(read_structure, _write(tmp_path, name), BAD_STRUCTURES[name][1])


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

    refused(read_spectrum, _bad_spectrum(tmp_path, name), BAD_SPECTRA[name][1])


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


# --------------------------------------------------------------------------- model directories (M1-M4)

TINY_DESCRIPTOR = {"kind": "wacsf", "n_g2": 4, "n_g4": 4, "zetas": [1.0, 2.0], "r_max": 5.0}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A two-member model trained for a few epochs on random features of a 9-feature descriptor."""
    from xanesnet.config import Config, TrainingSettings
    from xanesnet.pipeline import TrainingSet, train_model

    rng = np.random.default_rng(0)
    data = TrainingSet(ids=[f"m{i}" for i in range(24)], x=rng.random((24, 9)), y=rng.random((24, 10)),
                       energy=np.linspace(7100.0, 7150.0, 10))
    config = Config(descriptor=dict(TINY_DESCRIPTOR), model={"kind": "mlp", "hidden": [8], "dropout": 0.1}, seed=1,
                    training=TrainingSettings(epochs=3, patience=2, ensemble=2, batch_size=8, val_fraction=0.25))
    out = tmp_path_factory.mktemp("model") / "m"
    train_model(data, config, out, progress=False)
    return out


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    import shutil

    path = tmp_path / "m"
    shutil.copytree(tiny_model_dir, path)
    return path


def _edit(model: Path, change, *, restamp: bool = True) -> None:
    """Apply ``change`` to the model's config (a dict, edited in place) and, by default, re-stamp its checksum."""
    import json

    from xanesnet.bundle import stamp

    cfg = json.loads((model / "config.json").read_text())
    change(cfg)
    (model / "config.json").write_text(json.dumps(stamp(cfg) if restamp else cfg))


def _set_weights(model: Path, payload: bytes) -> None:
    import hashlib

    (model / "weights.pt").write_bytes(payload)
    _edit(model, lambda c: c.update(weights_sha256=hashlib.sha256(payload).hexdigest()))


class _Payload:
    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))


def _pickled_weights() -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"members": [{"net.0.weight": _Payload()}]}, buf)
    return buf.getvalue()


def _nan_weights(model: Path) -> bytes:
    import io

    import torch

    state = torch.load(model / "weights.pt", weights_only=True)
    next(iter(state["members"][0].values()))[0, 0] = float("nan")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _set(path: str, value):
    def change(cfg):
        *keys, last = path.split(".")
        node = cfg
        for k in keys:
            node = node[k]
        node[last] = value
    return change


BAD_MODELS = {
    # M1: weights that are not tensors, even with matching checksums
    "pickle": (lambda m: _set_weights(m, _pickled_weights()), r"weights\.pt holds more than tensors \(a pickled object\)"),
    "random": (lambda m: _set_weights(m, np.random.default_rng(1).bytes(5000)), r"weights\.pt is not a readable weights file"),
    "empty": (lambda m: _set_weights(m, b""), r"weights\.pt is not a readable weights file"),
    "nan_weights": (lambda m: _set_weights(m, _nan_weights(m)), r"member 0 weight net\.0\.weight holds NaN or infinite values"),
    "symlink": (lambda m: ((m / "weights.pt").unlink(), (m / "weights.pt").symlink_to(m / "config.json")),
                r"weights\.pt is a symbolic link"),
    # M2: malformed config values
    "version_string": (lambda m: _edit(m, _set("format_version", "1")), r"format_version is '1', not a whole number"),
    "config_number": (lambda m: (m / "config.json").write_text("5"), r"config\.json holds a int, not a JSON object"),
    "config_string": (lambda m: (m / "config.json").write_text('"model"'), r"config\.json holds a str, not a JSON object"),
    "deep": (lambda m: (m / "config.json").write_text("[" * 100_000 + "]" * 100_000), r"config\.json is not valid JSON \(RecursionError"),
    "huge_int_text": (lambda m: (m / "config.json").write_text('{"seed": ' + "9" * 5000 + "}"), r"config\.json is not valid JSON"),
    "huge_seed": (lambda m: _edit(m, _set("seed", 10**30)), r"seed must be a whole number from 0 to 2\^63 - 1"),
    "energy_strings": (lambda m: _edit(m, _set("energy", ["a"] * 10)), r"energy must be a list of numbers"),
    "energy_order": (lambda m: _edit(m, _set("energy", list(range(10, 0, -1)))), r"energy must be strictly increasing"),
    "descriptor_string": (lambda m: _edit(m, _set("descriptor.n_g2", "4")), r"descriptor: wacsf setting n_g2 must be a whole number, not '4'"),
    "scaler_length": (lambda m: _edit(m, _set("x_scaler.mean", [0.0] * 8)), r"x_scaler mean has shape \(8,\), expected \(9,\)"),
    "scaler_type": (lambda m: _edit(m, _set("x_scaler", [1, 2])), r"x_scaler must be a JSON object"),
    "no_trust": (lambda m: _edit(m, _set("uncertainty.trust", {})), r"uncertainty trust ensemble threshold must be a finite number"),
    "no_spread": (lambda m: _edit(m, lambda c: c["uncertainty"].pop("spread")), r"uncertainty spread must be a list of numbers"),
    "holdout": (lambda m: _edit(m, _set("holdout", {"ids": [1, 2]})), r"holdout must be a JSON object with a list of ids"),
    "transform_kind": (lambda m: _edit(m, _set("y_transform.kind", 3)), r"y_transform must be a JSON object with kind standardize, none, pca"),
    "spectra_string": (lambda m: _edit(m, _set("spectra", "x")), r"spectra: spectra settings must be a JSON object"),
    "model_hidden": (lambda m: _edit(m, _set("model.hidden", ["a"])), r"weights do not fit the saved architecture|model:"),
    # M3: descriptor sizes refused by counting, before any feature name is built
    "n_g2": (lambda m: _edit(m, _set("descriptor.n_g2", 10**9)), r"descriptor: invalid wacsf settings: n_g2=1000000000 is beyond 1024"),
    "n_angular": (lambda m: _edit(m, _set("descriptor.n_angular", 10**8)), r"n_angular=100000000 is beyond 1024"),
    "many_features": (lambda m: _edit(m, lambda c: c["descriptor"].update(
        angular_groups=["H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "B", "Si"], n_angular=1024,
        angular_shells=[1.0 + 0.1 * k for k in range(60)])), r"these settings give [\d,]+ features, more than 100,000"),
    # M4: NaN statistics, caught by the checksum and, in a model without one, by value
    "nan_std": (lambda m: _edit(m, lambda c: c["x_scaler"]["std"].__setitem__(0, float("nan")), restamp=False),
                r"config\.json does not match its model checksum"),
    "nan_std_restamped": (lambda m: _edit(m, lambda c: c["x_scaler"]["std"].__setitem__(0, float("nan"))),
                          r"x_scaler std holds NaN or infinite values"),
    "zero_std_legacy": (lambda m: _edit(m, lambda c: (c.pop("model_sha256"), c["x_scaler"]["std"].__setitem__(0, 0.0)),
                                        restamp=False), r"x_scaler std must be positive"),
}


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_bad_model_directory_is_refused_in_one_line(model_copy, capfd, name):
    from xanesnet.bundle import load_bundle

    BAD_MODELS[name][0](model_copy)
    refused(load_bundle, model_copy, BAD_MODELS[name][1])
    assert "PAYLOAD RAN" not in capfd.readouterr().out


def test_legacy_model_without_the_whole_model_checksum_still_loads(model_copy):
    from xanesnet.bundle import load_bundle

    _edit(model_copy, lambda c: c.pop("model_sha256"), restamp=False)
    assert len(load_bundle(model_copy).members) == 2


def test_shipped_models_carry_the_whole_model_checksum():
    import json

    from xanesnet.bundle import CHECKSUM_KEY, model_checksum
    from xanesnet.cli import MODELS_DIR

    configs = sorted(MODELS_DIR.glob("*/config.json"))
    assert configs
    for path in configs:
        cfg = json.loads(path.read_text())
        assert cfg.get(CHECKSUM_KEY) == model_checksum(cfg), f"{path.parent.name}: run scripts/stamp_models.py"


def test_cli_bad_model_one_line_exit_2_nothing_written(model_copy, tmp_path, capsys):
    _edit(model_copy, lambda c: c["x_scaler"]["std"].__setitem__(0, float("nan")), restamp=False)
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_copy), str(EXAMPLES / "ferrocene.xyz"), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"xanesnet predict: error: {model_copy}: ")
    assert not out.exists()


def test_readme_guarantees_quote_the_limits_in_force():
    """The README's Guarantees section states the limits the code enforces."""
    from conftest import ROOT

    from xanesnet.io import spectra, structures

    text = (ROOT / "README.md").read_text()
    section = " ".join(text[text.index("## Guarantees"):text.index("\n## ", text.index("## Guarantees") + 1)].split())

    def power(v: float) -> str:
        return f"{v:.0e}".replace("e+0", "e")

    for phrase in (f"within {structures.MAX_COORDINATE:g} A", f"at most {structures.MAX_ATOMS:,} atoms",
                   f"closer than {structures.MIN_DISTANCE} A", f"more than {structures.MAX_NEIGHBOURS} atoms within "
                   f"{structures.DENSITY_RADIUS:g} A", f"repeats within {structures.PERIODIC_REACH:g} A",
                   f"within {power(spectra.MAX_ABS_ENERGY)} eV", f"intensities within {power(spectra.MAX_ABS_INTENSITY)}",
                   f"at most {spectra.MAX_POINTS:,} points"):
        assert phrase in section, phrase


@pytest.mark.parametrize("kind", ["device", "compressed", "too_big"])
def test_files_that_are_not_plain_or_too_big_are_refused_before_reading(tmp_path, kind):
    """Siblings of S9/P3: nothing is read from a device or pipe, a compressed file or a file beyond the size limit."""
    from xanesnet.data.dataset import featurize_files
    from xanesnet.descriptors import preset
    from xanesnet.io import structures
    from xanesnet.io.spectra import read_spectrum

    path = tmp_path / ("x.xyz.gz" if kind == "compressed" else "x.xyz")
    if kind == "device":
        path.symlink_to("/dev/zero")
        message = r"not a file$"
    elif kind == "compressed":
        path.write_bytes(b"\x1f\x8b")
        message = r"compressed file: decompress it first$"
    else:
        with open(path, "wb") as f:
            f.truncate(structures.MAX_FILE_BYTES + 1)
        message = r"file of 16 MB is larger than the 16 MB limit$"
    with pytest.raises(XanesnetError, match=rf"^{re.escape(str(path))}: {message}"):
        read_structure(path)
    with pytest.raises(XanesnetError, match=rf"^{re.escape(str(path))}: {message}"):
        featurize_files([path], preset("plain"))
    if kind != "compressed":
        with pytest.raises(XanesnetError, match=rf"^{re.escape(str(path))}: {message}"):
            read_spectrum(path)


def test_spectrum_with_too_many_rows_stops_reading_early(tmp_path):
    from xanesnet.io.spectra import MAX_POINTS, read_spectrum

    path = tmp_path / "long.txt"
    path.write_text("".join(f"{k} 1\n" for k in range(MAX_POINTS + 2)))
    with pytest.raises(XanesnetError, match=rf"long.txt, line {MAX_POINTS + 1}: more than 200,000 rows$"):
        read_spectrum(path)
