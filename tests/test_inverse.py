"""From spectrum to structure: the first-shell rule, shift and scale recovery in `match`, the inverse model's
round trip and invariances, both commands' tables, their one-line errors, and docs/inverse.md against its JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, float16_jittered

from xanesnet.cli import main
from xanesnet.io.spectra import Spectrum
from xanesnet.io.structures import Structure, read_structure

INVERT_COLUMNS = ["name", "cn", "cn_prob", "r1", "r1_std", "C", "N", "O", "P/S", "halogen", "other"]
MATCH_COLUMNS = ["rank", "name", "score", "shift_ev", "scale", "rmse", "trusted", "weight"]


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def write_spectrum(path, energy, intensity):
    np.savetxt(path, np.column_stack([energy, intensity]), header="energy intensity")
    return path


# --- first shell ------------------------------------------------------------------------------------------------------
def test_first_shell_counts_donors_by_group_within_the_covalent_cutoff():
    from ase.data import covalent_radii

    from xanesnet.analysis.shell import cutoff_ratios, first_shell

    # Fe with 4 N at 2.0 A, one Cl at 2.3 A, one O just beyond 1.2 (R_Fe + R_O), an H far away
    r_o = 1.2 * (covalent_radii[26] + covalent_radii[8]) + 0.01
    pos = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 2.3], [0, 0, -r_o], [3.5, 3.5, 0]]
    s = Structure(name="t", numbers=np.array([26, 7, 7, 7, 7, 17, 8, 1]), positions=np.array(pos, float))
    shell = first_shell(s, 0)
    assert shell.cn == 5 and shell.neighbours == (1, 2, 3, 4, 5)
    assert shell.r1 == pytest.approx((4 * 2.0 + 2.3) / 5)
    assert shell.donors == {"C": 0, "N": 4, "O": 0, "P/S": 0, "halogen": 1, "other": 0}
    ratios = cutoff_ratios(s, 0, 10)  # the inverse model's auxiliary target: CN = how many are within the factor
    assert np.all(np.diff(ratios[:7]) >= 0) and np.isinf(ratios[7:]).all() and (ratios <= 1.2).sum() == shell.cn
    assert ratios[5] == pytest.approx(r_o / (covalent_radii[26] + covalent_radii[8]))
    # rotation and translation do not change it
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    moved = Structure(name="t", numbers=s.numbers, positions=s.positions @ q.T + 1.5)
    again = first_shell(moved, 0)
    assert (again.cn, again.neighbours, again.donors) == (shell.cn, shell.neighbours, shell.donors)
    assert again.r1 == pytest.approx(shell.r1, abs=1e-12)


def test_ferrocene_has_all_ten_ring_carbons():
    from xanesnet.analysis.shell import first_shell
    from xanesnet.io.structures import resolve_absorber

    s = read_structure(EXAMPLES / "ferrocene.xyz")
    shell = first_shell(s, resolve_absorber(s))
    assert shell.cn == 10 and shell.donors["C"] == 10 and 2.0 < shell.r1 < 2.1


# --- match: shift and scale recovery ---------------------------------------------------------------------------------
def _peaks(energy, centres):
    edge = 1.0 / (1.0 + np.exp(-(energy - 7120.0) / 1.5))
    return edge + sum(0.6 * np.exp(-0.5 * ((energy - c) / 2.0) ** 2) for c in centres)


@pytest.mark.parametrize("shift", [-3.7, 0.0, 1.73, 4.9])
def test_match_recovers_shift_and_scale_and_ranks_the_truth_first(shift):
    from xanesnet.match import rank_candidates

    energy = np.linspace(7097.0, 7172.0, 226)
    mean = np.array([_peaks(energy, c) for c in ([7125.0], [7127.0, 7140.0], [7128.0, 7150.0], [7131.0])])
    std = np.full_like(mean, 0.01)
    fine = np.linspace(7080.0, 7190.0, 1101)
    truth = np.interp(fine - shift, energy, mean[2], left=mean[2, 0], right=mean[2, -1])  # M(E + d) = s P(E)
    measured = Spectrum(name="m", energy=fine, intensity=2.5 * truth)
    r = rank_candidates(measured, energy, mean, std, ["a", "b", "c", "d"])
    assert r.order[0] == 2
    assert r.shift_ev[2] == pytest.approx(shift, abs=0.03)
    assert r.scale[2] == pytest.approx(2.5, rel=1e-3)
    assert r.weight.sum() == pytest.approx(1.0) and r.weight[2] == r.weight.max()


def test_match_refuses_a_spectrum_short_of_the_model_range():
    from xanesnet.errors import XanesnetError
    from xanesnet.match import rank_candidates

    energy = np.linspace(7097.0, 7172.0, 226)
    short = Spectrum(name="short", energy=np.linspace(7110.0, 7172.0, 100), intensity=np.ones(100), source="short.txt")
    with pytest.raises(XanesnetError, match=r"short.txt: the spectrum \(7110-7172 eV\) does not cover the model's range"):
        rank_candidates(short, energy, np.ones((2, 226)), np.ones((2, 226)), ["a", "b"])


# --- match on the command line ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """Eight Fe complexes of the shared sample and the spectrum of one, shifted by +1.5 eV and scaled by 3."""
    from conftest import shared_data

    from xanesnet.io.spectra import read_spectrum

    sample = shared_data("fe_k_fdmnes_sample")
    root = tmp_path_factory.mktemp("candidates")
    (root / "xyz").mkdir()
    files = sorted((sample / "xyz").glob("*.xyz"))[:8]
    for p in files:
        shutil.copy(p, root / "xyz" / p.name)
    spec = read_spectrum(sample / "xanes" / f"{files[7].stem}.txt")
    write_spectrum(root / "measured.txt", spec.energy + 1.5, 3.0 * spec.intensity)
    return root, files[7].stem


def test_match_table_columns_and_the_truth_first(candidates, tmp_path, capsys):
    root, truth = candidates
    out = tmp_path / "ranking.tsv"
    code, stdout, err = run(["match", str(root / "measured.txt"), "--candidates", str(root / "xyz"), "--out", str(out),
                             "--plot", "--no-progress"], capsys)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == MATCH_COLUMNS
    rows = [dict(zip(MATCH_COLUMNS, ln.split("\t"))) for ln in lines[1:]]
    assert [int(r["rank"]) for r in rows] == list(range(1, 9))
    assert rows[0]["name"] == truth and abs(float(rows[0]["shift_ev"]) - 1.5) < 0.3
    assert abs(float(rows[0]["scale"]) - 3.0) < 0.3
    assert sum(float(r["weight"]) for r in rows) == pytest.approx(1.0, abs=1e-3)
    assert all(r["trusted"] in ("true", "false") for r in rows)
    assert (tmp_path / "ranking.png").is_file() and truth in stdout


def test_match_bad_input_is_one_line_and_exit_2(candidates, tmp_path, capsys):
    root, _ = candidates
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["match", str(root / "measured.txt"), "--candidates", str(empty), "--out", str(tmp_path / "r.tsv")], capsys)
    assert code == 2 and err == f"xanesnet match: error: no structure files found in {empty}\n"
    short = write_spectrum(tmp_path / "short.txt", np.linspace(7120, 7172, 50), np.ones(50))
    code, _, err = run(["match", str(short), "--candidates", str(root / "xyz"), "--out", str(tmp_path / "r.tsv")], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{short}: the spectrum (7120-7172 eV) does not cover the model's range" in err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("ferrocene.xyz", "hexaamminecobalt.xyz"):
        shutil.copy(EXAMPLES / name, mixed / name)
    code, _, err = run(["match", str(root / "measured.txt"), "--candidates", str(mixed), "--out", str(tmp_path / "r.tsv")], capsys)
    assert code == 2 and err.count("\n") == 1 and "absorbers of different elements" in err and "pass --model" in err
    assert not (tmp_path / "r.tsv").exists()


# --- the inverse model -----------------------------------------------------------------------------------------------
def test_inverse_window_sits_on_the_main_edge_not_on_an_intense_pre_edge_peak():
    """FDMNES gives some complexes a narrow pre-edge peak about as high as the edge: with the package's default edge
    smoothing (3 eV) E0 lands on that peak; the inverse input's heavier smoothing finds the main edge."""
    from xanesnet.inverse import InverseInput
    from xanesnet.spectra import edge_energy

    e = np.arange(7097.0, 7172.0, 1 / 3)
    y = 0.6 / (1 + np.exp(-(e - 7127.0) / 3.0)) + 1.2 * np.exp(-0.5 * ((e - 7112.0) / 0.8) ** 2) + 0.01
    spectrum = Spectrum(name="spike", energy=e, intensity=y)
    assert edge_energy(spectrum) < 7110.0
    x, e0 = InverseInput().read(spectrum)
    assert 7126.0 < e0 < 7129.0 and x.shape == InverseInput().energies.shape


def test_inverse_input_of_an_older_model_keeps_its_edge_smoothing():
    from xanesnet.inverse import InverseInput

    old = InverseInput.from_config({"window": [-10.0, 28.0], "step": 0.25, "jitter": 1.0, "noise": 0.02})
    assert old.edge_smooth == 3.0 and old.window == (-10.0, 28.0)
    assert InverseInput.from_config({**old.__dict__, "edge_smooth": 5.0}).edge_smooth == 5.0


@pytest.fixture(scope="module")
def inverse_model(tmp_path_factory):
    """An inverse model trained in seconds on 40 Fe complexes of the shared sample (through the command line)."""
    from conftest import copy_fe_sample

    root = copy_fe_sample(tmp_path_factory.mktemp("inverse"), 40)
    (root / "config.json").write_text(json.dumps({"model": {"kind": "mlp", "hidden": [32], "dropout": 0.0},
                                                  "training": {"epochs": 8, "patience": 4, "ensemble": 2}}))
    code = main(["train", "--inverse", "--xyz", str(root / "xyz"), "--spectra", str(root / "xanes"), "--out",
                 str(root / "model"), "--config", str(root / "config.json"), "--seed", "2", "--no-progress"])
    assert code == 0
    return root


def test_inverse_round_trip_and_shift_and_scale_invariance(inverse_model):
    from xanesnet.inverse import InversePredictor
    from xanesnet.io.spectra import read_spectrum

    spectra = [read_spectrum(p) for p in sorted((inverse_model / "xanes").glob("*.txt"))[:6]]
    first = InversePredictor.from_bundle(inverse_model / "model").predict(spectra)
    again = InversePredictor.from_bundle(inverse_model / "model").predict(spectra)
    for name in ("cn", "cn_prob", "probabilities", "r1", "r1_std", "donors"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert np.all(first.r1_std > 0) and np.allclose(first.probabilities.sum(1), 1.0)
    moved = [Spectrum(name=s.name, energy=s.energy + 3.3, intensity=2.5 * s.intensity) for s in spectra]
    shifted = InversePredictor.from_bundle(inverse_model / "model").predict(moved)
    np.testing.assert_allclose(shifted.e0, first.e0 + 3.3, atol=1e-6)
    np.testing.assert_allclose(shifted.probabilities, first.probabilities, atol=1e-4)
    np.testing.assert_allclose(shifted.r1, first.r1, atol=1e-4)


@pytest.mark.parametrize("tolerance, stored", [(1.0, "float16"), (1e-12, "float32")])
def test_inverse_float16_storage_is_kept_only_where_harmless(inverse_model, tmp_path, monkeypatch, tolerance, stored):
    import torch

    from xanesnet.config import Config, TrainingSettings
    from xanesnet.inverse import InverseInput, InversePredictor, build_inverse_set, train_inverse
    from xanesnet.io.spectra import read_spectrum

    monkeypatch.setattr("xanesnet.pipeline.FLOAT16_TOLERANCE", tolerance)
    inputs = InverseInput()
    data = build_inverse_set(inverse_model / "xyz", inverse_model / "xanes", inputs)
    config = Config(model={"kind": "mlp", "hidden": [32], "dropout": 0.0}, seed=3,
                    training=TrainingSettings(epochs=4, patience=4, ensemble=2))
    saved = train_inverse(data, inputs, tmp_path / "m", config=config, weights_dtype="float16", progress=False)
    assert saved["weights_dtype"] == stored and "max_change_over_rms" in saved["float16_check"]
    members = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)["members"]
    assert {t.dtype for sd in members for t in sd.values()} == {getattr(torch, stored)}
    spectra = [read_spectrum(p) for p in sorted((inverse_model / "xanes").glob("*.txt"))[:4]]
    loaded = InversePredictor.from_bundle(tmp_path / "m")
    assert all(p.dtype == torch.float32 for net in loaded.members for p in net.parameters())
    np.testing.assert_allclose(loaded.predict(spectra).probabilities.sum(1), 1.0)


def test_invert_table_columns(inverse_model, tmp_path, capsys):
    files = sorted((inverse_model / "xanes").glob("*.txt"))[:3]
    out = tmp_path / "results.tsv"
    code, stdout, err = run(["invert", *map(str, files), "--model", str(inverse_model / "model"), "--out", str(out)], capsys)
    assert code == 0, err
    lines = out.read_text().splitlines()
    head = lines[0].split("\t")
    assert head[: len(INVERT_COLUMNS)] == INVERT_COLUMNS and len(lines) == 4
    for ln, f in zip(lines[1:], files):
        row = dict(zip(head, ln.split("\t")))
        assert row["name"] == f.stem and int(row["cn"]) >= 0 and 0 < float(row["cn_prob"]) <= 1
        assert 1.0 < float(row["r1"]) < 3.5 and float(row["r1_std"]) > 0
        assert all(int(row[g]) >= 0 for g in INVERT_COLUMNS[5:])


def write_xdi(path, energy, intensity, element="Fe"):
    rows = "\n".join(f"{e:.3f} {y:.6e}" for e, y in zip(energy, intensity))
    path.write_text(f"# XDI/1.0\n# Element.symbol: {element}\n# Element.edge: K\n# Column.1: energy eV\n# Column.2: norm\n"
                    f"#----\n# energy norm\n{rows}\n")
    return path


def test_both_commands_read_xdi(inverse_model, candidates, tmp_path, capsys):
    root, truth = candidates
    data = np.loadtxt(root / "measured.txt")
    xdi = write_xdi(tmp_path / "measured.xdi", data[:, 0], data[:, 1])
    code, _, err = run(["match", str(xdi), "--candidates", str(root / "xyz"), "--out", str(tmp_path / "r.tsv")], capsys)
    assert code == 0, err
    assert (tmp_path / "r.tsv").read_text().splitlines()[1].split("\t")[1] == truth
    spec = sorted((inverse_model / "xanes").glob("*.txt"))[0]
    table = np.loadtxt(spec, skiprows=2)
    fe = write_xdi(tmp_path / f"{spec.stem}.xdi", table[:, 0] - 4.0, 2 * table[:, 1])
    code, _, err = run(["invert", str(fe), str(spec), "--model", str(inverse_model / "model"), "--out", str(tmp_path / "i.tsv")],
                       capsys)
    assert code == 0, err
    rows = [ln.split("\t") for ln in (tmp_path / "i.tsv").read_text().splitlines()[1:]]
    assert rows[0][1:5] == rows[1][1:5]  # shifted by 4 eV and scaled: the same first shell
    co = write_xdi(tmp_path / "co.xdi", table[:, 0], table[:, 1], element="Co")
    code, _, err = run(["invert", str(co), "--model", str(inverse_model / "model"), "--out", str(tmp_path / "c.tsv")], capsys)
    assert code == 2 and err == f"xanesnet invert: error: {co}: the spectrum is of Co, the model model of Fe\n"


def test_invert_bad_input_is_one_line_and_exit_2(inverse_model, tmp_path, capsys):
    spec = sorted((inverse_model / "xanes").glob("*.txt"))[0]
    data = np.loadtxt(spec, skiprows=2)
    short = write_spectrum(tmp_path / "short.txt", data[:60, 0], data[:60, 1])  # ends 20 eV after the start
    out = tmp_path / "results.tsv"
    code, _, err = run(["invert", str(short), "--model", str(inverse_model / "model"), "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and f"{short}: the spectrum" in err and "does not cover the model's range" in err
    code, _, err = run(["invert", str(spec), "--element", "Zn", "--out", str(out)], capsys)
    assert code == 2 and err.startswith("xanesnet invert: error: no shipped inverse model for Zn")
    code, _, err = run(["invert", str(spec), "--model", str(inverse_model / "xyz"), "--out", str(out)], capsys)
    assert code == 2 and "not a model directory" in err
    code, _, err = run(["invert", str(spec), "--model", str(inverse_model / "model"), "--element", "Co", "--out", str(out)],
                       capsys)
    assert code == 2 and err == f"xanesnet invert: error: {inverse_model / 'model'}: the model was trained on Fe, not Co\n"
    assert not out.exists()


# --- the report ------------------------------------------------------------------------------------------------------
def test_docs_inverse_match_their_json():
    report = json.loads((ROOT / "docs" / "inverse.json").read_text())
    doc = (ROOT / "docs" / "inverse.md").read_text()
    assert f"commit `{report['commit'][:10]}`" in doc
    for r in [*report["invert"].values(), report["small_250"]]:
        assert f"| {r['cn_exact']:.3f} | {r['cn_within_1']:.3f} | {r['r1_mae']:.4f} | {r['r1_coverage_1sigma']:.3f} | " \
               f"{r['r1_coverage_2sigma']:.3f} |" in doc
    for r in report["match"].values():
        assert f"| {r['top1']:.3f} | {r['top3']:.3f} | {r['mean_rank']:.2f} |" in doc
    for g in report["invert"]["shift_2"]["cn_exact_by_group"].values():
        assert f"| {g['n']} | {g['cn_exact']:.3f} |" in doc
    b = report["baselines"]
    assert f"| {b['most_common_cn_exact']:.3f} | | {b['training_mean_r1_mae']:.4f} |" in doc


def test_shipped_inverse_model_is_insensitive_to_its_float16_rounding(fe_sample):
    """The float32 originals lie within half a float16 step of the stored weights: moving every weight by a random
    amount of that size changes no CN probability by 1e-3 and no r1 by 1e-3 A on the sample's spectra."""
    import torch

    from xanesnet.inverse import InversePredictor
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.pipeline import FLOAT16_TOLERANCE

    shipped = InversePredictor.from_bundle(ROOT / "models" / "fe-k-xanes-inverse")
    if shipped.config.get("weights_dtype") != "float16":
        pytest.skip("the shipped inverse model stores float32 weights")
    assert shipped.config["float16_check"]["max_change_over_rms"] < FLOAT16_TOLERANCE  # measured when converted
    spectra = [read_spectrum(p) for p in sorted((fe_sample / "xanes").glob("*.txt"))[:30]]
    ref = shipped.predict(spectra)
    moved = InversePredictor(shipped.config, float16_jittered(shipped.members, torch.Generator().manual_seed(0))).predict(
        spectra)
    assert np.max(np.abs(moved.probabilities - ref.probabilities)) < 1e-3
    assert np.max(np.abs(moved.r1 - ref.r1)) < 1e-3
