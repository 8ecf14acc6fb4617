"""The shipped FEFF models (Ti-Zn, XANES and XES): each exists, says what it is, and is picked by the absorber's element.

Also the one-line errors when no shipped model fits: no first-row transition
metal, or an absorber outside Ti-Zn without ``--model``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES

from xanesnet.cli import MODELS_DIR, main
from xanesnet.io.structures import FIRST_ROW_TM
from xanesnet.spectra import parse_grid

#: One example molecule per metal (scripts/make_examples.py).
EXAMPLE = {"Ti": "titanium_tetrachloride", "V": "hexaaquavanadium", "Cr": "chromium_hexacarbonyl", "Mn": "permanganate",
           "Fe": "hexacyanoferrate", "Co": "hexaamminecobalt", "Ni": "tetracyanonickelate", "Cu": "tetraamminecopper",
           "Zn": "tetrachlorozincate"}
SHIPPED = [(el, spectrum) for spectrum in ("xanes", "xes") for el in FIRST_ROW_TM]


def feff_model(el: str, spectrum: str):
    return MODELS_DIR / f"{el.lower()}-k-{spectrum}-feff"


def expected_model(el: str, spectrum: str):
    """The FDMNES-trained model comes first where there is one (Fe XANES), else the FEFF one."""
    fdmnes = MODELS_DIR / f"{el.lower()}-k-{spectrum}"
    return fdmnes if (fdmnes / "config.json").is_file() else feff_model(el, spectrum)


@pytest.mark.parametrize("el,spectrum", SHIPPED)
def test_shipped_feff_model_says_what_it_is(el, spectrum):
    path = feff_model(el, spectrum)
    assert (path / "config.json").is_file() and (path / "weights.pt").is_file(), f"{path} is not shipped"
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["element"], cfg["edge"], cfg["spectrum"]) == (el, "K", spectrum)
    assert "FEFF10" in cfg["reference"]
    grid = parse_grid(cfg["spectra"]["grid"])
    assert grid.kind == "absolute" and np.allclose(cfg["energy"], grid.energies())
    assert cfg["n_train"] >= 50 and cfg["holdout_metrics"]["n"] >= 3
    assert cfg["holdout_metrics"]["mse"] > 0
    assert cfg["y_transform"]["kind"] == "softplus"  # positive intensities by construction
    assert cfg["spectra"]["mean_intensity"] == (1.0 if spectrum == "xes" else None)  # XES: the shape, scale 1


def test_feff_models_are_small():
    sizes = {p.name: sum(f.stat().st_size for f in p.iterdir()) for p in MODELS_DIR.glob("*-feff")}
    assert len(sizes) == len(SHIPPED)
    # most directories hold a universal network (one per spectrum, saved once per metal: git keeps one copy)
    assert sum(sizes.values()) < 17.5e6, sizes


def test_models_directory_keeps_to_the_size_plan():
    """All shipped models together stay under 30 MB (the repository's size plan)."""
    total = sum(f.stat().st_size for f in MODELS_DIR.rglob("*") if f.is_file())
    assert total < 30e6, f"models/ holds {total / 1e6:.1f} MB"


@pytest.mark.parametrize("spectrum", ["xanes", "xes"])
def test_copies_of_a_universal_network_are_one_file(spectrum):
    """The size plan counts each universal network once: its float16 copies (one per metal) are byte-identical."""
    weights = set()
    for el in FIRST_ROW_TM:
        cfg = json.loads((feff_model(el, spectrum) / "config.json").read_text())
        if cfg["feff_model"] == "universal" and cfg["weights_dtype"] == "float16":
            weights.add((feff_model(el, spectrum) / "weights.pt").read_bytes())
    assert len(weights) <= 1


@pytest.mark.parametrize("el,spectrum", SHIPPED)
def test_predict_picks_the_model_of_the_absorber(el, spectrum, tmp_path, capsys):
    xyz = EXAMPLES / f"{EXAMPLE[el]}.xyz"
    code = main(["predict", str(xyz), "--spectrum", spectrum, "--out", str(tmp_path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    model = expected_model(el, spectrum)
    assert f"model {model.name}" in out
    assert (" E0 " in out) == (spectrum == "xanes") and (" main line " in out) == (spectrum == "xes")  # XES: no edge
    table = np.loadtxt(tmp_path / f"{xyz.stem}.{spectrum}.txt")
    energy = np.asarray(json.loads((model / "config.json").read_text())["energy"])
    np.testing.assert_allclose(table[:, 0], energy, atol=1e-3)
    assert np.all(np.isfinite(table[:, 1:])) and np.all(table[:, 2] >= 0)
    assert np.all(table[:, 1] >= 0)  # no negative mean intensity


def test_readme_table_and_shipped_models_match_the_report():
    """README's table is the one the training script writes from docs/feff_models.json, which matches the models."""
    from conftest import ROOT

    from xanesnet.analysis.feff_models import readme_table

    report = json.loads((ROOT / "docs" / "feff_models.json").read_text())
    rows = report["rows"]
    assert len(rows) == len(SHIPPED) and report["commit"]
    assert readme_table(rows) in (ROOT / "README.md").read_text()
    for r in rows:
        cfg = json.loads((feff_model(r["metal"], r["spectrum"]) / "config.json").read_text())
        assert cfg["holdout_metrics"]["mse"] == pytest.approx(r["mse"], rel=1e-9)
        assert cfg["feff_model"] == r["kind"] and cfg["n_train"] == r["n_train"]
        assert r["min_intensity_over_max"] >= 0


def test_fe_xes_uses_the_feff_model(tmp_path, capsys):
    code = main(["predict", str(EXAMPLES / "ferrocene.xyz"), "--spectrum", "xes", "--out", str(tmp_path), "--no-progress"])
    out, _ = capsys.readouterr()
    assert code == 0 and "model fe-k-xes-feff" in out


def write_xyz(path, atoms):
    lines = [str(len(atoms)), "test"] + [f"{s} {x:.4f} {y:.4f} {z:.4f}" for s, (x, y, z) in atoms]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(capsys, argv):
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_no_transition_metal_is_a_one_line_error(tmp_path, capsys):
    xyz = write_xyz(tmp_path / "methane.xyz", [("C", (0, 0, 0)), ("H", (0.63, 0.63, 0.63)), ("H", (-0.63, -0.63, 0.63)),
                                               ("H", (-0.63, 0.63, -0.63)), ("H", (0.63, -0.63, -0.63))])
    err = one_line_error(capsys, ["predict", str(xyz), "--spectrum", "xes", "--out", str(tmp_path / "o")])
    assert str(xyz) in err and "no first-row transition metal (Ti-Zn)" in err


@pytest.mark.parametrize("absorber,element", [("Ru", "Ru"), ("1", "C")])
def test_absorber_outside_ti_zn_needs_a_model(tmp_path, capsys, absorber, element):
    xyz = write_xyz(tmp_path / "ru_carbonyl.xyz", [("Ru", (0, 0, 0)), ("C", (1.95, 0, 0)), ("O", (3.08, 0, 0)),
                                                   ("C", (-1.95, 0, 0)), ("O", (-3.08, 0, 0))])
    for spectrum in ("xanes", "xes"):
        err = one_line_error(capsys, ["predict", str(xyz), "--absorber", absorber, "--spectrum", spectrum,
                                      "--out", str(tmp_path / "o")])
        assert err == (f"xanesnet predict: error: {xyz}: no shipped {spectrum.upper()} model for {element}: "
                       "xanesnet ships Ti-Zn; pass --model DIR")
    assert not (tmp_path / "o").exists()



def test_example_references_are_of_the_example_molecules_and_the_check_scores_them(tmp_path):
    """The committed FEFF10 runs of data/examples are of exactly those geometries; the check scores each one it can."""
    from xanesnet.analysis import examples as check_examples
    from xanesnet.io.structures import find_structure_files, read_structure
    from xanesnet.simulate.store import read_simulations

    examples = {p.stem: read_structure(p) for p in find_structure_files([EXAMPLES])}
    for spectrum in ("xanes", "xes"):
        sims = read_simulations(check_examples.REFERENCES, spectrum)
        assert sorted(s.structure.name for s in sims) == sorted(examples)
        for s in sims:
            np.testing.assert_array_equal(s.structure.numbers, examples[s.structure.name].numbers)
            np.testing.assert_allclose(s.structure.positions, examples[s.structure.name].positions, atol=1e-6)
    rows = check_examples.check()
    assert len(rows) == 2 * len(examples)
    scored = [r for r in rows if "ratio" in r]
    assert all("covers" in r["skipped"] for r in rows if "ratio" not in r)  # only grid coverage skips a spectrum
    assert len(scored) >= len(examples) and all(np.isfinite(r["ratio"]) and r["ratio"] > 0 for r in scored)
    check_examples.write_report(rows, tmp_path)
    assert (tmp_path / "examples_feff.md").read_text().count("-feff |") == len(rows)
