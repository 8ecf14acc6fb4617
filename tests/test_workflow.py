"""The spectroscopist's workflow: self-describing outputs, XDI in and out, Larch's E0 and normalisation, trustworthy plots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import EXAMPLES, shared_data

from xanesnet.cli import main
from xanesnet.io.spectra import read_spectrum
from xanesnet.spectra.preedge import find_e0, pre_edge


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def header(path):
    return [ln for ln in path.read_text().splitlines() if ln.startswith("#")]


def fields(path):
    """``# key = value`` header lines of a written text spectrum."""
    return dict(ln[2:].split(" = ", 1) for ln in header(path) if " = " in ln)


@pytest.fixture(scope="module")
def ferrocene(tmp_path_factory):
    """ferrocene predicted by the shipped Fe XANES and XES models into one directory, text, XDI and JSON."""
    out = tmp_path_factory.mktemp("pred")
    xyz = str(EXAMPLES / "ferrocene.xyz")
    for spectrum in ("xanes", "xes"):
        for fmt in ("txt", "xdi"):
            assert main(["predict", xyz, "--spectrum", spectrum, "--format", fmt, "--out", str(out), "--no-progress",
                         "--json", str(out / f"{spectrum}.json")]) == 0
    return out


# --------------------------------------------------------------------------- 1. files that say what they hold


def test_outputs_are_named_by_kind_and_never_overwrite_each_other(ferrocene):
    assert sorted(p.name for p in ferrocene.glob("ferrocene.*")) == [
        "ferrocene.xanes.txt", "ferrocene.xanes.xdi", "ferrocene.xes.txt", "ferrocene.xes.xdi"]
    xanes, xes = np.loadtxt(ferrocene / "ferrocene.xanes.txt"), np.loadtxt(ferrocene / "ferrocene.xes.txt")
    assert xanes[0, 0] > 7090 and xanes.shape[1] == xes.shape[1] == 3 and xanes.shape != xes.shape


@pytest.mark.parametrize("kind", ["xanes", "xes"])
def test_header_states_kind_element_edge_model_normalisation_e0_units_and_trust(ferrocene, kind):
    f = fields(ferrocene / f"ferrocene.{kind}.txt")
    assert (f["kind"], f["element"], f["edge"]) == (kind, "Fe", "K")
    assert f["model"] == {"xanes": "fe-k-xanes", "xes": "fe-k-xes-feff"}[kind]
    assert f["normalisation"].startswith("none: on the scale of " + ("FDMNES" if kind == "xanes" else "FEFF10"))
    assert f["units"] == "energy eV; intensity and std: " + {"xanes": "normalised absorption",
                                                             "xes": "emission intensity (arb. units)"}[kind]
    assert f["trust"] in ("trusted", "NOT trusted") and float(f["uncertainty_score"]) > 0
    assert f["uncertainty_mode"] == "ensemble" and f["energy_shift"] == "0.000 eV"
    if kind == "xanes":
        assert re.fullmatch(r"\d+\.\d\d eV \(Larch pre_edge\)", f["e0"])
    else:  # an emission spectrum has a main line, never an edge
        assert "e0" not in f and re.fullmatch(r"\d+\.\d\d eV", f["main_line"])


# --------------------------------------------------------------------------- 2. XDI in and out


@pytest.mark.parametrize("kind", ["xanes", "xes"])
def test_xdi_output_reads_back_with_the_same_numbers_and_fields(ferrocene, kind):
    text, xdi = ferrocene / f"ferrocene.{kind}.txt", ferrocene / f"ferrocene.{kind}.xdi"
    lines = xdi.read_text().splitlines()
    assert lines[0].startswith("# XDI/1.0 xanesnet/") and "# Column.1: energy eV" in lines
    assert "# Element.symbol: Fe" in lines and "# Element.edge: K" in lines and "# Column.3: std" in lines
    s = read_spectrum(xdi)
    table = np.loadtxt(text)
    np.testing.assert_array_equal(s.energy, table[:, 0])
    np.testing.assert_array_equal(s.intensity, table[:, 1])
    assert (s.meta["element"], s.meta["edge"]) == ("Fe", "K")
    ours = s.meta["xdi"]["xanesnet"]  # our own fields, in their namespace
    assert ours["kind"] == kind and ours["model"] == fields(text)["model"] and ours["trust"] == fields(text)["trust"]


@pytest.mark.parametrize("kind", ["xanes", "xes"])
def test_larch_reads_our_xdi(ferrocene, kind):
    """xraylarch's own XDI reader (the optional extra) gets the arrays, element and edge."""
    larch_io = pytest.importorskip("larch.io", reason="xraylarch is an optional extra: pip install 'xanesnet[larch]'")
    g = larch_io.read_xdi(str(ferrocene / f"ferrocene.{kind}.xdi"))
    table = np.loadtxt(ferrocene / f"ferrocene.{kind}.txt")
    signal = "mu" if kind == "xanes" else "intensity"
    assert g.array_labels == ["energy", signal, "std"] and g.array_units[0] == "eV"
    np.testing.assert_allclose(g.energy, table[:, 0])
    np.testing.assert_allclose(getattr(g, signal), table[:, 1])
    assert (g.element, g.edge) == ("Fe", "K")


FE_EXAMPLES = ["ferrocene", "hexacyanoferrate", "hexaaquairon", "iron_pentacarbonyl", "tetrachloroferrate"]
TINY = {"model": {"kind": "mlp", "hidden": [8], "dropout": 0.0},
        "training": {"epochs": 3, "patience": 2, "ensemble": 2, "val_fraction": 0.3}}


@pytest.fixture(scope="module")
def xdi_set(tmp_path_factory):
    """Five Fe example structures with XDI spectra (the shipped model's predictions standing in for references)."""
    root = tmp_path_factory.mktemp("xdi_set")
    xyz, spectra = root / "xyz", root / "spectra"
    xyz.mkdir()
    spectra.mkdir()
    for n in FE_EXAMPLES:
        (xyz / f"{n}.xyz").write_text((EXAMPLES / f"{n}.xyz").read_text())
    assert main(["predict", str(xyz), "--format", "xdi", "--out", str(root / "pred"), "--no-progress"]) == 0
    for n in FE_EXAMPLES:  # references are paired by file name: NAME.xdi
        (root / "pred" / f"{n}.xanes.xdi").rename(spectra / f"{n}.xdi")
    (root / "c.json").write_text(json.dumps({"descriptor": "xanesnet", **TINY}))
    return root


def test_every_command_that_reads_spectra_reads_xdi(xdi_set, tmp_path, capsys):
    """train and evaluate take XDI references."""
    xyz, spectra = xdi_set / "xyz", xdi_set / "spectra"
    code, out, err = run(["train", "--xyz", str(xyz), "--spectra", str(spectra), "--config", str(xdi_set / "c.json"),
                          "--seed", "0", "--out", str(tmp_path / "m"), "--no-cache", "--no-progress"], capsys)
    assert code == 0, err
    code, out, err = run(["evaluate", "--model", str(tmp_path / "m"), "--xyz", str(xyz), "--spectra", str(spectra),
                          "--no-progress"], capsys)
    assert code == 0, err
    assert re.search(rf"^n\s+{len(FE_EXAMPLES)}$", out, re.M)


# --------------------------------------------------------------------------- 5. features end to end


def test_features_end_to_end_with_a_xanesnet_preset(xdi_set, tmp_path, capsys):
    """featurize (XANESNET's preset, with the spectra) -> train --features -> the model loads, predicts from structures
    and from --features, and evaluates on --features."""
    xyz, npz, model = xdi_set / "xyz", tmp_path / "train.npz", tmp_path / "m"
    assert main(["featurize", str(xyz), "--preset", "xanesnet", "--spectra", str(xdi_set / "spectra"), "--out", str(npz),
                 "--no-progress"]) == 0
    data = np.load(npz)
    assert data["x"].shape == (5, 49) and data["y"].shape[0] == 5 and len(data["energy"]) == data["y"].shape[1]
    (tmp_path / "c.json").write_text(json.dumps(TINY))
    code, _, err = run(["train", "--features", str(npz), "--config", str(tmp_path / "c.json"), "--seed", "0",
                        "--out", str(model), "--no-progress"], capsys)
    assert code == 0, err
    code, _, err = run(["predict", "--model", str(model), str(xyz / "ferrocene.xyz"), "--out", str(tmp_path / "a"),
                        "--json", str(tmp_path / "a.json")], capsys)
    assert code == 0, err
    code, _, err = run(["predict", "--model", str(model), "--features", str(npz), "--out", str(tmp_path / "b"),
                        "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(f"{n}.xanes.txt" for n in FE_EXAMPLES)
    a, b = (json.loads((tmp_path / f"{k}.json").read_text())["ferrocene"] for k in "ab")
    np.testing.assert_allclose(a["intensity"], b["intensity"], rtol=1e-6, atol=1e-9)  # same vectors, same spectrum
    code, out, err = run(["evaluate", "--model", str(model), "--features", str(npz), "--no-progress"], capsys)
    assert code == 0 and re.search(r"^n\s+5$", out, re.M), err


def test_features_made_elsewhere_predict_only_from_features(xdi_set, tmp_path, capsys):
    """Vectors without descriptor settings (another tool's): the model says to predict from --features, and does."""
    npz = tmp_path / "full.npz"
    assert main(["featurize", str(xdi_set / "xyz"), "--preset", "xanesnet", "--spectra", str(xdi_set / "spectra"),
                 "--out", str(npz), "--no-progress"]) == 0
    data = dict(np.load(npz))
    bare = tmp_path / "bare.npz"
    np.savez(bare, x=data["x"], y=data["y"], energy=data["energy"], ids=data["ids"])
    (tmp_path / "c.json").write_text(json.dumps(TINY))
    assert main(["train", "--features", str(bare), "--config", str(tmp_path / "c.json"), "--seed", "0",
                 "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    capsys.readouterr()
    code, _, err = run(["predict", "--model", str(tmp_path / "m"), str(xdi_set / "xyz" / "ferrocene.xyz")], capsys)
    assert code == 2 and err.endswith("this model was trained on precomputed features without descriptor settings: predict "
                                      "with --features X.npz (arrays ids, x)\n")
    code, out, err = run(["predict", "--model", str(tmp_path / "m"), "--features", str(bare), "--out", str(tmp_path / "o")],
                         capsys)
    assert code == 0 and "wrote 5 spectra" in out, err
    code, _, err = run(["predict", "--model", str(tmp_path / "m"), "--features", str(tmp_path / "nothere.npz")], capsys)
    assert code == 2 and "nothere.npz: no such file" in err


# --------------------------------------------------------------------------- 3. Larch's conventions


def _edge(energy, e0=7112.0, width=1.5, step=1.0, slope=0.0):
    """A smooth step at ``e0`` on a sloping background, with a white line above it."""
    return (slope * (energy - energy[0]) + step * 0.5 * (1 + np.tanh((energy - e0) / width))
            + 0.4 * np.exp(-0.5 * ((energy - e0 - 8) / 3) ** 2))


def test_pre_edge_on_an_analytic_edge():
    """E0 at the inflection of the step, the edge step and a flat normalised post-edge level of 1, with no larch."""
    energy = np.arange(7000.0, 7400.0, 0.5)
    mu = 0.3 + _edge(energy, step=2.0, slope=-1e-4)
    edge = pre_edge(energy, mu)
    assert edge.e0 == pytest.approx(7112.0, abs=0.5) and find_e0(energy, mu) == edge.e0
    assert edge.edge_step == pytest.approx(2.0, rel=0.02)
    post = energy > 7200
    assert np.all(np.abs(edge.norm[post] - 1) < 0.02) and np.all(np.abs(edge.norm[energy < 7080]) < 0.02)


def _larch():
    return pytest.importorskip("larch.xafs", reason="xraylarch is an optional extra: pip install 'xanesnet[larch]'")


def test_pre_edge_matches_larch_on_theory_spectra():
    """The port agrees with xraylarch itself on FDMNES and FEFF spectra: E0, edge step, normalised spectrum."""
    xafs = _larch()
    from larch import Group

    files = sorted(shared_data("fe_k_fdmnes_sample", "xanes").glob("*.txt"))[:20]
    files += sorted(shared_data("feff_3d").glob("*/xanes/*.dat"))[::40][:10]
    for path in files:
        s = read_spectrum(path)
        g = Group(energy=s.energy, mu=s.intensity)
        xafs.pre_edge(g)
        ours = pre_edge(s.energy, s.intensity)
        assert ours.e0 == pytest.approx(g.e0, abs=1e-9), path.name
        assert ours.edge_step == pytest.approx(g.edge_step, rel=1e-9)
        np.testing.assert_allclose(ours.norm, g.norm, atol=1e-9)


def test_printed_and_json_e0_agree_with_pre_edge_on_the_prediction(ferrocene, capsys, tmp_path):
    record = json.loads((ferrocene / "xanes.json").read_text())["ferrocene"]
    edge = pre_edge(np.array(record["energy"]), np.array(record["intensity"]))
    assert abs(record["e0_ev"] - edge.e0) <= 0.5 and record["edge_step"] == pytest.approx(edge.edge_step)
    code, out, _ = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path), "--no-progress"], capsys)
    printed = float(re.search(r"E0 (\d+\.\d+) eV \(Larch\)", out).group(1))
    assert abs(printed - edge.e0) <= 0.5
    try:
        xafs = _larch()
    except pytest.skip.Exception:
        return
    from larch import Group

    g = Group(energy=np.array(record["energy"]), mu=np.array(record["intensity"]))
    xafs.pre_edge(g)
    assert abs(record["e0_ev"] - g.e0) <= 0.5 and abs(printed - g.e0) <= 0.5


def test_e0_shifts_everything_written_and_printed(ferrocene, tmp_path, capsys):
    before = json.loads((ferrocene / "xanes.json").read_text())["ferrocene"]
    code, out, _ = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--e0", "7112.5", "--out", str(tmp_path), "--no-progress",
                        "--json", str(tmp_path / "p.json")], capsys)
    after = json.loads((tmp_path / "p.json").read_text())["ferrocene"]
    shift = after["energy_shift_ev"]
    assert shift == pytest.approx(7112.5 - before["e0_ev"])
    np.testing.assert_allclose(after["energy"], np.array(before["energy"]) + shift)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "ferrocene.xanes.txt")[:, 0], np.round(after["energy"], 4))
    assert after["e0_ev"] == pytest.approx(7112.5, abs=0.5)
    assert after["main_peak_ev"] == pytest.approx(before["main_peak_ev"] + shift, abs=1e-6)
    assert f"E0 {after['e0_ev']:.2f} eV (Larch), main peak {after['main_peak_ev']:.2f} eV" in out
    assert f"energies shifted by {shift:+.2f} eV (--e0)" in out
    assert fields(tmp_path / "ferrocene.xanes.txt")["energy_shift"] == f"{shift:.3f} eV"


def test_xes_summary_prints_the_main_line_never_an_edge(ferrocene, tmp_path, capsys):
    code, out, _ = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--spectrum", "xes", "--out", str(tmp_path),
                        "--no-progress"], capsys)
    assert code == 0 and re.search(r"^ferrocene: Fe XES, main line \d+\.\d\d eV", out, re.M)
    assert "E0" not in out and "edge" not in out
    code, _, err = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--spectrum", "xes", "--e0", "7100",
                        "--out", str(tmp_path / "no")], capsys)
    assert code == 2 and "an emission (XES) spectrum has no edge" in err and not (tmp_path / "no").exists()


def test_normalize_command_normalises_as_pre_edge(tmp_path, capsys):
    from test_spectra import _measured_xdi

    path, energy, mu = _measured_xdi(tmp_path)
    code, out, _ = run(["normalize", str(path), "--out", str(tmp_path / "n"), "--format", "xdi"], capsys)
    edge = pre_edge(energy, read_spectrum(path).intensity)
    assert code == 0 and f"foil.norm.xdi: E0 {edge.e0:.2f} eV, edge step {edge.edge_step:.4g}" in out
    s = read_spectrum(tmp_path / "n" / "foil.norm.xdi")
    np.testing.assert_allclose(s.intensity, edge.norm, rtol=1e-7, atol=1e-9)
    assert s.meta["signal"] == "norm" and s.meta["element"] == "Fe"
    assert np.all(np.abs(s.intensity[s.energy > 7150] - 1) < 0.02)  # a clean step normalises to 1 after the edge
    # the windows are Larch's keywords
    run(["normalize", str(path), "--out", str(tmp_path / "w"), "--pre1", "-50", "--pre2", "-20", "--nnorm", "1"], capsys)
    table = np.loadtxt(tmp_path / "w" / "foil.norm.txt")
    np.testing.assert_allclose(table[:, 1], pre_edge(energy, s.intensity * 0 + read_spectrum(path).intensity,
                                                     pre1=-50, pre2=-20, nnorm=1).norm, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- 10. plots a reader can trust


def test_spectrum_figure_shows_kind_mode_and_trust():
    from xanesnet.analysis.plots import spectrum_figure

    e = np.linspace(7100, 7160, 61)
    y = _edge(e)
    for kind, label in (("xanes", "normalised absorption"), ("xes", "emission intensity (arb. units)")):
        for mode, band in (("ensemble", "ensemble spread"), ("mc", "MC dropout")):
            fig = spectrum_figure(e, y, 0.01 + 0 * y, kind=kind, mode=mode, trust="NOT trusted: uncertainty score 0.7")
            ax = fig.axes[0]
            assert ax.get_ylabel() == label and ax.get_xlabel() == "energy (eV)"
            assert f"prediction ± 2σ ({band})" in [t.get_text() for t in ax.get_legend().get_texts()]
            assert [t.get_text() for t in ax.texts] == ["NOT trusted: uncertainty score 0.7"]


def test_predict_plot_carries_the_verdict_and_score(tmp_path, capsys, monkeypatch):
    import xanesnet.analysis.plots as plots

    figures = []
    real = plots.spectrum_figure
    monkeypatch.setattr(plots, "spectrum_figure", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    code, _, _ = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--plot", "--mc-samples", "3", "--out", str(tmp_path),
                      "--no-progress", "--json", str(tmp_path / "p.json")], capsys)
    assert code == 0 and (tmp_path / "ferrocene.xanes.png").is_file()
    ax = figures[0].axes[0]
    r = json.loads((tmp_path / "p.json").read_text())["ferrocene"]
    verdict = "trusted" if r["trusted"] else "NOT trusted"
    assert ax.texts[0].get_text() == (f"{verdict}: uncertainty score {r['uncertainty_score']:.3g} "
                                      f"(threshold {r['trust_threshold']:.3g})")
    assert r["uncertainty_mode"] == "mc" and "MC dropout" in ax.get_legend().get_texts()[0].get_text()


def test_readme_larch_workflow_overlay_on_a_measured_xdi_after_aligning_e0(tmp_path, capsys, monkeypatch):
    """The README's walk: predict to XDI; normalise a measured XDI (its E0 printed); predict again aligned to that E0 and
    overlay the measurement with --reference."""
    import xanesnet.analysis.plots as plots
    from test_spectra import _measured_xdi

    measured = tmp_path / "measured"
    measured.mkdir()
    path, energy, mu = _measured_xdi(measured, "ferrocene.xdi")
    code, out, _ = run(["normalize", str(path), "--out", str(tmp_path / "norm")], capsys)
    e0 = float(re.search(r"E0 (\d+\.\d+) eV", out).group(1))
    figures = []
    real = plots.spectrum_figure
    monkeypatch.setattr(plots, "spectrum_figure", lambda *a, **k: figures.append((a, k)) or real(*a, **k))
    code, out, err = run(["predict", str(EXAMPLES / "ferrocene.xyz"), "--e0", str(e0), "--format", "xdi", "--plot",
                          "--reference", str(measured), "--out", str(tmp_path / "pred")], capsys)
    assert code == 0 and "no reference spectrum" not in err
    assert f"E0 {e0:.2f} eV (Larch)" in out
    (pred_energy, _, _), kwargs = figures[0]
    ref_energy, ref_norm = kwargs["reference"]
    np.testing.assert_allclose(ref_norm, pre_edge(energy, read_spectrum(path).intensity).norm)
    assert kwargs["reference_label"] == f"reference, normalised (E0 {e0:.2f} eV)"
    assert pre_edge(pred_energy, read_spectrum(tmp_path / "pred" / "ferrocene.xanes.xdi").intensity).e0 == pytest.approx(e0, abs=0.5)
    assert (tmp_path / "pred" / "ferrocene.xanes.png").is_file()
