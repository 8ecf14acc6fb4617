"""Spectrum readers (on real files), broadening, edge energy, normalisation, grids and their errors."""

from __future__ import annotations

import json
import math
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data

from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import SPECTRUM_FORMATS, Spectrum, detect_format, read_spectrum
from xanesnet.spectra import (
    BROADENING_PRESETS,
    BroadeningSettings,
    EdgeSettings,
    EnergyGrid,
    NormalisationSettings,
    ProcessSettings,
    arctangent_width,
    broaden,
    edge_energy,
    fit_edge_step,
    lorentzian_convolve,
    normalise,
    parse_grid,
    process,
    processor_from_dict,
    resample,
    to_absolute,
)

HERE = Path(__file__).resolve().parent
ORCA_EXAMPLE = HERE / "data" / "orca_fe_xas.dat"
#: Worst relative RMSE of the ``fdmnes`` preset over all 4,079 Fe spectra is 0.146% (docs/broadening.md).
FDMNES_PRESET_TOLERANCE = 0.002
N_PAIRS = 6


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def fdmnes_pairs(tmp_path_factory) -> list[tuple[Path, Path]]:
    """A few raw + convolved FDMNES Fe spectra, taken from the archive (names from the unpacked sample)."""
    archive = shared_data("fe_k_fdmnes_train.tar.gz")
    names = sorted(p.stem for p in shared_data("fe_k_fdmnes_sample", "xanes").glob("*.txt"))[:N_PAIRS]
    wanted = {f"fe_k_fdmnes/{kind}/{n}.txt": (kind, n) for n in names for kind in ("xanes_raw", "xanes_conv")}
    out = tmp_path_factory.mktemp("fdmnes")
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.name in wanted:
                kind, name = wanted.pop(member.name)
                (out / kind).mkdir(exist_ok=True)
                (out / kind / f"{name}.txt").write_bytes(tar.extractfile(member).read())
                if not wanted:
                    break
    assert not wanted, f"not in the archive: {sorted(wanted)}"
    return [(out / "xanes_raw" / f"{n}.txt", out / "xanes_conv" / f"{n}.txt") for n in names]


def _feff(kind: str) -> Path:
    return sorted(shared_data("feff_3d", "Fe", kind).glob("*.dat"))[0]


def _sample_conv() -> Path:
    return sorted(shared_data("fe_k_fdmnes_sample", "xanes").glob("*.txt"))[0]


def _first_row(path: Path, skip: int) -> list[float]:
    rows = [ln.split() for ln in path.read_text().splitlines()[skip:] if ln.strip() and not ln.lstrip().startswith("#")]
    return [float(v) for v in rows[0]]


def test_every_format_has_a_real_file_test():
    assert set(SPECTRUM_FORMATS) == {"xdi", "athena", "fdmnes-raw", "feff", "fdmnes-conv", "orca", "two-column"}


MEASURED_XDI = """# XDI/1.0 GSE/1.0
# Column.1: energy keV
# Column.2: i0
# Column.3: itrans
# Element.symbol: Fe
# Element.edge: K
# Mono.d_spacing: 3.13553
# Scan.edge_energy: 7112.0
# ///
# Fe foil, room temperature
#----
# energy i0 itrans
"""


def _measured_xdi(tmp_path: Path, name: str = "foil.xdi") -> tuple[Path, np.ndarray, np.ndarray]:
    """A measured-style XDI file (transmission counts, energies in keV) and the mu(E) it holds."""
    energy = np.linspace(7.05, 7.25, 201)
    mu = 0.2 + 1.0 / (1 + np.exp(-(energy - 7.1125) / 0.002))
    i0 = 1e5 * (1 + 0.01 * np.sin(energy * 100))
    itrans = i0 * np.exp(-mu)
    path = tmp_path / name
    path.write_text(MEASURED_XDI + "\n".join(f"{e:.5f} {a:.6e} {b:.6e}" for e, a, b in zip(energy, i0, itrans)) + "\n")
    return path, energy * 1000, mu


def test_xdi_measured_transmission_in_kev(tmp_path):
    """XDI as beamlines write it: mu = -ln(itrans/i0), keV to eV, the Element fields kept."""
    path, energy_ev, mu = _measured_xdi(tmp_path)
    assert detect_format(path) == "xdi"
    s = read_spectrum(path)
    np.testing.assert_allclose(s.energy, energy_ev, rtol=1e-12)
    np.testing.assert_allclose(s.intensity, mu, rtol=1e-5)
    assert (s.meta["element"], s.meta["edge"], s.meta["signal"]) == ("Fe", "K", "-ln(itrans/i0)")
    assert s.meta["xdi"]["scan"]["edge_energy"] == "7112.0" and s.meta["xdi"]["mono"]["d_spacing"] == "3.13553"


def test_xdi_prefers_mu_and_refuses_a_file_without_energy_first(tmp_path):
    path = tmp_path / "a.xdi"
    path.write_text("# XDI/1.0\n# Column.1: energy eV\n# Column.2: i0\n# Column.3: mutrans\n#----\n# energy i0 mutrans\n"
                    "7100 5 0.1\n7101 5 0.3\n7102 5 0.9\n")
    assert read_spectrum(path).intensity.tolist() == [0.1, 0.3, 0.9]
    path.write_text("# XDI/1.0\n# Column.1: angle deg\n# Column.2: mutrans\n#----\n16.0 0.1\n16.1 0.3\n")
    with pytest.raises(XanesnetError, match=r"a\.xdi: XDI Column\.1 is 'angle'; xanesnet needs energy \(eV\) first$"):
        read_spectrum(path)


def test_athena_project_read_with_larch(tmp_path):
    """An Athena project that xraylarch wrote reads as its first group's energy and mu."""
    larch_io = pytest.importorskip("larch.io", reason="xraylarch is an optional extra: pip install 'xanesnet[larch]'")
    from larch import Group

    energy = np.linspace(7050.0, 7250.0, 201)
    mu = 0.2 + 1.0 / (1 + np.exp(-(energy - 7112.5) / 2.0))
    project = larch_io.create_athena(str(tmp_path / "fe.prj"))
    project.add_group(Group(energy=energy, mu=mu, filename="fe foil", label="fe_foil"))
    project.save()
    assert detect_format(tmp_path / "fe.prj") == "athena"
    s = read_spectrum(tmp_path / "fe.prj")
    np.testing.assert_allclose(s.energy, energy)
    np.testing.assert_allclose(s.intensity, mu)


def test_athena_project_without_larch_says_how_to_get_it(tmp_path, monkeypatch):
    import gzip
    import sys

    monkeypatch.setitem(sys.modules, "larch.io", None)
    path = tmp_path / "fe.prj"
    path.write_bytes(gzip.compress(b"# Athena project file -- Demeter version 0.9.21\n"))
    with pytest.raises(XanesnetError, match=r"fe\.prj: Athena project files need xraylarch: pip install 'xanesnet\[larch\]'$"):
        read_spectrum(path)


def test_fdmnes_raw(fdmnes_pairs):
    path = fdmnes_pairs[0][0]
    assert detect_format(path) == "fdmnes-raw"
    s = read_spectrum(path)
    assert len(s.energy) == 376 and s.energy[0] == 7097.0 and s.energy[-1] == 7172.0
    assert s.intensity[0] == _first_row(path, 2)[1]
    head = path.read_text().splitlines()[0].split()
    assert s.meta["e_edge"] == float(head[0]) == 7112.0
    assert s.meta["z"] == 26 and s.meta["e_cut"] == float(head[6])
    assert s.meta["e_fermi"] == pytest.approx(7112.0 + float(head[6]))
    assert s.meta["columns"] == ["Energy", "<xanes>"]


def test_fdmnes_raw_relative_energies_are_made_absolute(fdmnes_pairs, tmp_path):
    lines = fdmnes_pairs[0][0].read_text().splitlines()
    rel = lines[:2] + [f"{float(ln.split()[0]) - 7112.0:10.2f} {ln.split()[1]}" for ln in lines[2:]]
    path = tmp_path / "rel.txt"
    path.write_text("\n".join(rel))
    s = read_spectrum(path)
    assert s.energy[0] == pytest.approx(7097.0) and s.meta["energy_offset"] == 7112.0


def test_fdmnes_conv_train_and_sample(fdmnes_pairs):
    for path in (fdmnes_pairs[0][1], _sample_conv()):
        assert detect_format(path) == "fdmnes-conv"
        s = read_spectrum(path)
        assert len(s.energy) == 226 and s.energy[0] == 7097.0 and s.energy[-1] == 7172.0
        assert [s.energy[0], s.intensity[0]] == _first_row(path, 2)


def test_two_column_override_on_fdmnes_conv(tmp_path):
    path = _sample_conv()
    s = read_spectrum(path, fmt="two-column")
    assert np.array_equal(s.intensity, read_spectrum(path).intensity)
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(f"{e} {y}" for e, y in zip(s.energy, s.intensity)))
    assert detect_format(plain) == "two-column"
    assert np.array_equal(read_spectrum(plain).intensity, s.intensity)


@pytest.mark.parametrize("kind", ["xanes", "xes"])
def test_feff(kind):
    path = _feff(kind)
    assert detect_format(path) == "feff"
    s = read_spectrum(path)
    omega, e, k, mu, mu0, chi = _first_row(path, 0)
    assert s.energy[0] == omega and s.intensity[0] == mu
    assert s.meta["e_fermi"] == pytest.approx(omega - e, abs=1e-3)
    assert s.meta["columns"] == ["omega", "e", "k", "mu", "mu0", "chi"]
    assert len(s.energy) == {"xanes": 64, "xes": 221}[kind]


def test_orca_example():
    assert detect_format(ORCA_EXAMPLE) == "orca"
    s = read_spectrum(ORCA_EXAMPLE)
    row = _first_row(ORCA_EXAMPLE, 4)
    assert s.energy[0] == row[0] == 7105.0 and s.intensity[0] == row[1]
    assert s.meta["columns"][:2] == ["Energy", "TotalSpectrum"]
    assert 7118.5 < s.energy[np.argmax(s.intensity)] < 7119.3


# --------------------------------------------------------------------------- broadening


def test_broadening_keeps_the_area_on_an_irregular_grid():
    rng = np.random.default_rng(0)
    x = np.sort(np.concatenate([[0.0, 100.0], rng.uniform(0, 100, 400)]))
    y = np.exp(-0.5 * ((x - 40) / 1.5) ** 2) + 0.5 * np.exp(-0.5 * ((x - 60) / 0.7) ** 2)
    area = np.trapezoid(y, x)
    wide = np.unique(np.concatenate([np.linspace(-3000, -20, 3000), np.linspace(-20, 120, 7001),
                                     np.linspace(120, 3100, 3000)]))
    for settings in (BroadeningSettings(width=2.0, extend=0.0),
                     BroadeningSettings(kind="arctangent", width=1.0, width_max=10.0, ef=30.0, extend=0.0)):
        out = broaden(Spectrum("s", x, y), settings, energy=wide).intensity
        assert np.trapezoid(out, wide) == pytest.approx(area, rel=2e-3)


def test_delta_broadens_to_a_lorentzian_of_the_right_fwhm():
    x = np.array([-50.0, -1e-3, 0.0, 1e-3, 50.0])
    y = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    fwhm = 1.7
    e = np.linspace(-10, 10, 20001)
    out = lorentzian_convolve(x, y / 1e-3, fwhm, at=e)
    half = out.max() / 2
    above = e[out >= half]
    assert above[-1] - above[0] == pytest.approx(fwhm, abs=2e-3)
    lorentz = (fwhm / 2) / np.pi / (e**2 + (fwhm / 2) ** 2)
    np.testing.assert_allclose(out, lorentz, rtol=0, atol=1e-6 * lorentz.max() * 10)


def test_arctangent_width_is_the_fdmnes_form():
    ef, ec, el, w, wmax = 7110.0, 30.0, 30.0, 1.2, 15.0
    e = np.array([7100.0, ef, ef + ec, ef + 5.0, 1e6])
    got = arctangent_width(e, width=w, width_max=wmax, ec=ec, el=el, ef=ef)
    x = 5.0 / ec
    expected_5 = w + wmax * (0.5 + math.atan(math.pi / 3 * wmax / el * (x - 1 / x**2)) / math.pi)
    np.testing.assert_allclose(got, [w, w, w + wmax / 2, expected_5, w + wmax], rtol=1e-4)


def test_irregular_grid_needs_no_resampling():
    s = read_spectrum(_feff("xanes"))
    fine_e = np.linspace(s.energy[0], s.energy[-1], 20001)
    fine = Spectrum("fine", fine_e, np.interp(fine_e, s.energy, s.intensity))
    at = np.linspace(s.energy[0] + 5, s.energy[-1] - 5, 200)
    settings = BroadeningSettings(width=1.5, extend=20.0)
    np.testing.assert_allclose(broaden(s, settings, energy=at).intensity, broaden(fine, settings, energy=at).intensity,
                               rtol=1e-5, atol=1e-8)


def test_fermi_cut_removes_intensity_below_ef():
    x = np.linspace(7090, 7130, 401)
    y = np.where(x < 7105, 1.0, 0.0)  # only below the Fermi level
    out = broaden(Spectrum("s", x, y), BroadeningSettings(width=1.0, ef=7110.0, extend=0.0)).intensity
    assert np.abs(out).max() == 0.0


def test_fdmnes_preset_reproduces_the_convolved_spectra(fdmnes_pairs):
    for raw_path, conv_path in fdmnes_pairs:
        conv = read_spectrum(conv_path)
        got = broaden(read_spectrum(raw_path), "fdmnes", energy=np.linspace(7097, 7172, 226)).intensity
        rel = np.sqrt(np.mean((got - conv.intensity) ** 2)) / np.sqrt(np.mean(conv.intensity**2))
        assert rel < FDMNES_PRESET_TOLERANCE, f"{raw_path.name}: relative RMSE {rel:.4%}"


def test_fdmnes_preset_through_process(fdmnes_pairs):
    raw_path, conv_path = fdmnes_pairs[1]
    out = process(read_spectrum(raw_path), {"broadening": "fdmnes", "grid": "absolute:7097:7172:226"})
    conv = read_spectrum(conv_path)
    assert np.sqrt(np.mean((out.intensity - conv.intensity) ** 2)) / np.sqrt(np.mean(conv.intensity**2)) \
        < FDMNES_PRESET_TOLERANCE
    assert 7100 < out.e0 < 7140 and out.meta["grid"] == "absolute:7097:7172:226"


# --------------------------------------------------------------------------- edge, normalisation, grids


def _step(e: np.ndarray, e0: float = 7120.0) -> np.ndarray:
    return 0.5 * (1 + np.tanh((e - e0) / 1.5))


def test_normalising_a_synthetic_step_gives_a_unit_step():
    e = np.linspace(7060, 7200, 1401)
    s = Spectrum("step", e, 0.3 + 2.5 * _step(e))
    assert edge_energy(s) == pytest.approx(7120.0, abs=0.01)
    n = normalise(s)
    np.testing.assert_allclose(n.intensity[e < 7100], 0.0, atol=1e-6)
    np.testing.assert_allclose(n.intensity[e > 7140], 1.0, atol=1e-6)
    assert n.meta["edge_step"] == pytest.approx(2.5)


def test_pre_edge_line_and_post_edge_polynomial():
    e = np.linspace(7000, 7300, 3001)
    d = e - 7120.0
    y = 0.1 + 0.002 * d + _step(e) * (2.0 + 0.004 * d - 1e-5 * d**2)
    fit = fit_edge_step(Spectrum("s", e, y), e0=7120.0,
                        settings=NormalisationSettings(pre_edge=(-100, -20), pre_order=1, post_edge=(20, 170), post_order=2))
    np.testing.assert_allclose(fit.pre, [0.002, 0.1], rtol=1e-6)
    assert fit.step == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_resampling_a_linear_function_is_exact(method):
    rng = np.random.default_rng(1)
    e = np.sort(np.concatenate([[7090.0, 7180.0], rng.uniform(7090, 7180, 60)]))
    s = Spectrum("lin", e, 3.0 * e - 2.0)
    out = resample(s, "absolute:7097:7172:226", method=method)
    np.testing.assert_allclose(out.intensity, 3.0 * np.linspace(7097, 7172, 226) - 2.0, rtol=0, atol=1e-8)
    rel = resample(s, parse_grid("relative:-15:40:111"), e0=7120.0, method=method)
    assert rel.energy[0] == -15.0 and rel.meta["energy_reference"] == "e0"
    back = to_absolute(rel)
    np.testing.assert_allclose(back.intensity, 3.0 * back.energy - 2.0, atol=1e-8)
    assert back.energy[0] == 7105.0


def test_grid_specs_and_json():
    grid = parse_grid("relative:-15:60:226")
    assert str(grid) == "relative:-15:60:226" and grid.step == pytest.approx(1 / 3)
    assert EnergyGrid.from_dict(json.loads(json.dumps(grid.to_dict()))) == grid
    assert parse_grid("7097:7172:226") == EnergyGrid(kind="absolute", start=7097, stop=7172, n=226)
    with pytest.raises(XanesnetError, match=r"^grid 'relative:-15:60' is not kind:start:stop:n"):
        parse_grid("relative:-15:60")
    with pytest.raises(XanesnetError, match=r"^grid: kind must be one of 'absolute', 'relative', not 'relativ'$"):
        parse_grid("relativ:-15:60:226")
    with pytest.raises(XanesnetError, match=r"^grid: start must be below stop, got 60 and -15 eV$"):
        parse_grid("relative:60:-15:226")
    with pytest.raises(XanesnetError, match=r"relative to the edge energy E0; give E0 \(eV\)"):
        grid.absolute()


def test_process_settings_json_round_trip_and_unknown_keys():
    settings = ProcessSettings.from_dict({"broadening": "fdmnes", "grid": "relative:-15:60:226", "normalisation": {},
                                          "edge": {"window": [7100, 7140]}})
    data = json.loads(json.dumps(settings.to_dict()))
    assert data["broadening"]["scale"] == pytest.approx(5 * math.pi) and data["edge"]["window"] == [7100, 7140]
    assert ProcessSettings.from_dict(data) == settings
    assert BroadeningSettings.from_dict(BROADENING_PRESETS["fdmnes"].to_dict()) == BROADENING_PRESETS["fdmnes"]
    valid = "kind, width, width_max, ec, el, ef, ef_reference, extend, scale"
    with pytest.raises(XanesnetError, match=re.escape(f"unknown broadening setting(s) 'widht'; valid: {valid}")):
        ProcessSettings.from_dict({"broadening": {"widht": 1.0}})
    with pytest.raises(XanesnetError, match=r"unknown spectra setting\(s\) 'grids'; valid: broadening, shift, edge"):
        processor_from_dict({"grids": "relative:-15:60:226"})
    with pytest.raises(XanesnetError, match=r"^unknown broadening 'fdmnse'; known: fdmnes, lorentzian, arctangent$"):
        ProcessSettings.from_dict({"broadening": "fdmnse"})
    with pytest.raises(XanesnetError, match=r"arctangent broadening needs ef"):
        BroadeningSettings(kind="arctangent")
    with pytest.raises(XanesnetError, match=r"^broadening: width must be positive, not -1$"):
        BroadeningSettings(width=-1)


def test_relative_grid_processing_of_feff_spectra_shares_one_grid():
    proc = processor_from_dict({"broadening": {"width": 1.25, "ef": 0.0, "ef_reference": "fermi"},
                                "normalisation": {"pre_edge": [-20, -8]}, "grid": "relative:-8:40:145"})
    outs = [proc(read_spectrum(p)) for p in sorted(shared_data("feff_3d", "Fe", "xanes").glob("*.dat"))[:3]]
    for out in outs:
        np.testing.assert_array_equal(out.energy, outs[0].energy)
        assert out.meta["energy_reference"] == "e0" and out.e0 > 7100
        assert 0.7 < out.intensity[out.energy > 15].mean() < 1.3
        assert to_absolute(out).energy[0] == pytest.approx(out.e0 - 8)


def test_broadening_needs_the_reference_the_file_lacks():
    with pytest.raises(XanesnetError, match=r"orca_fe_xas.dat: broadening measures ef from the edge energy E_edge"):
        broaden(read_spectrum(ORCA_EXAMPLE), "fdmnes")


# --------------------------------------------------------------------------- bad input


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_files_fail_with_one_line_naming_the_file(tmp_path):
    cases = {
        "nan.txt": ("energy intensity\n7097 0.1\n7098 0.2\n7099 nan\n", r"nan.txt, line 4: column 2 is nan \(NaN or infinite\)$"),
        "inf.txt": ("7097 0.1\n7098 inf\n7099 0.3\n", r"inf.txt, line 2: column 2 is inf \(NaN or infinite\)$"),
        "dup.txt": ("7097 0.1\n7098 0.2\n7098 0.3\n",
                    r"dup.txt: energies are not strictly increasing \(duplicate at point 3: 7098 -> 7098 eV\)$"),
        "down.txt": ("7097 0.1\n7099 0.2\n7098 0.3\n",
                     r"down.txt: energies are not strictly increasing \(decreasing at point 3: 7099 -> 7098 eV\)$"),
        "header_only.txt": ("    FDMNES\n    energy     <xanes>\n",
                            r"header_only.txt: empty spectrum: no numeric energy/intensity rows$"),
        "crashed.dat": ("# FEFF10 K-edge XANES of Fe\n# omega  e  k  mu  mu0  chi\n",
                        r"crashed.dat: empty spectrum: no numeric energy/intensity rows$"),
        "one_row.txt": ("7097 0.1\n", r"one_row.txt: empty spectrum: 1 point\(s\)$"),
        "blank.txt": ("\n\n", r"blank.txt: empty file$"),
        "words.txt": ("what is this\nno numbers here\n",
                      r"words.txt: cannot tell the spectrum format; pass --format "
                      r"\(fdmnes-raw, feff, xdi, athena, fdmnes-conv, orca, two-column\)$"),
        "garbled.txt": ("FDMNES\nenergy <xanes>\n7097 0.1\n7098 x0.2\n",
                        r"garbled.txt, line 4: non-numeric value in '7098 x0.2'$"),
        "log.txt": ("SCF iteration 1\n  1  0.5\nconverged\n", r"log.txt: cannot tell the spectrum format"),
    }
    for name, (text, message) in cases.items():
        path = _write(tmp_path, name, text)
        with pytest.raises(XanesnetError, match=message) as info:
            read_spectrum(path)
        assert "\n" not in str(info.value)
    with pytest.raises(XanesnetError, match=r"missing.txt: no such file$"):
        read_spectrum(tmp_path / "missing.txt")
    with pytest.raises(XanesnetError, match=r"unknown spectrum format 'xmu'; known: fdmnes-raw, feff"):
        read_spectrum(_write(tmp_path, "ok.txt", "7097 0.1\n7098 0.2\n"), fmt="xmu")
    bad_head = _write(tmp_path, "head.txt", "7112.0 26 = E_edge, Z, n_edge\nEnergy <xanes>\n7097 0.1\n7098 0.2\n")
    with pytest.raises(XanesnetError, match=r"head.txt, line 1: not FDMNES raw output"):
        read_spectrum(bad_head, fmt="fdmnes-raw")


def test_grid_not_covered_says_which_end(tmp_path):
    e = np.linspace(7100, 7160, 61)
    s = Spectrum("short", e, np.ones_like(e), source=str(tmp_path / "short.txt"))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(XanesnetError, match=re.escape(
            "short.txt: covers 7100-7160 eV but the grid needs 7097-7172 eV: short at both ends")):
        resample(s, "absolute:7097:7172:226")
    with pytest.raises(XanesnetError, match=r"covers 7100-7160 eV but the grid needs 7097-7150 eV: short at the low end$"):
        process(s, {"grid": "absolute:7097:7150:100"})
    with pytest.raises(XanesnetError, match=r"covers 7100-7160 eV but the grid needs 7110-7170 eV: short at the high end$"):
        resample(s, "absolute:7110:7170:61")
    step = Spectrum("edge", e, _step(e, 7130.0), source="edge.txt")
    with pytest.raises(XanesnetError, match=r"^edge.txt: covers 7100-7160 eV but the grid needs 7115-7190 eV "
                                            r"\(relative:-15:60:226 around E0 = 7130.00 eV\): short at the high end$"):
        process(step, {"grid": "relative:-15:60:226"})
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_bad_arrays_fail_in_processing():
    e = np.linspace(7097, 7172, 76)
    y = np.ones_like(e)
    y[5] = np.nan
    with pytest.raises(XanesnetError, match=r"^nan: intensity is NaN or infinite at point 6$"):
        process(Spectrum("nan", e, y), {"broadening": "fdmnes"})
    with pytest.raises(XanesnetError, match=r"^flat: the edge step at E0 = .* is not positive"):
        normalise(Spectrum("flat", e, np.ones_like(e)), e0=7120.0)
    with pytest.raises(XanesnetError, match=r"^short: the pre-edge window -30 to -10 eV from E0 = 7100.00 eV holds 0 "):
        normalise(Spectrum("short", e, _step(e, 7100.0)), e0=7100.0)
    with pytest.raises(XanesnetError, match=r"^x: the edge search window 7000-7050 eV is outside the spectrum"):
        edge_energy(Spectrum("x", e, e.copy()), EdgeSettings(window=(7000, 7050)))
