"""Ensemble spread, MC dropout, calibration, and the trust flag."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ROOT
from test_training import quick_config, synthetic
from torch import nn

from xanesnet.bundle import load_bundle
from xanesnet.errors import XanesnetError
from xanesnet.pipeline import train_model
from xanesnet.predict import Predictor
from xanesnet.uncertainty import (EXTRAPOLATION_LIMIT, calibration_curve, coverage, fit_calibration, labelling_order,
                                  mc_dropout)


def test_ensemble_std_is_zero_for_identical_members_and_positive_otherwise(tmp_path):
    data = synthetic()
    train_model(data, quick_config(ensemble=3), tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    assert np.all(predictor.predict_features(data.x).std > 0)
    state = predictor.bundle.members[0].state_dict()
    for net in predictor.bundle.members[1:]:
        net.load_state_dict(state)
    same = predictor.predict_features(data.x, calibrate=False)
    assert np.all(same.std <= 1e-12 * np.abs(same.mean).max())  # zero up to float rounding of the mean


def test_mc_dropout_samples_only_dropout_layers():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    net.eval()
    with mc_dropout(net):
        modes = {type(m).__name__: m.training for m in net.modules() if not isinstance(m, nn.Sequential)}
        x = torch.randn(16, 4)
        a, b = net(x), net(x)
    assert modes == {"Linear": False, "BatchNorm1d": False, "Dropout": True}
    assert not torch.allclose(a, b)  # masks differ between draws
    assert not any(m.training for m in net.modules())  # restored afterwards


def test_mc_dropout_needs_dropout(tmp_path):
    data = synthetic()
    train_model(data, quick_config(), tmp_path / "m", progress=False)
    with pytest.raises(XanesnetError, match="--mc-samples needs a model trained with dropout > 0"):
        Predictor.from_bundle(tmp_path / "m").predict_features(data.x, mc_samples=5)


def test_mc_dropout_predictions_are_reproducible_and_combine_with_ensembles(tmp_path):
    data = synthetic()
    cfg = quick_config(ensemble=2)
    cfg.model = dataclasses.replace(cfg.model, dropout=0.2)
    train_model(data, cfg, tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    a = predictor.predict_features(data.x[:5], mc_samples=7)
    b = predictor.predict_features(data.x[:5], mc_samples=7)
    assert a.samples.shape == (14, 5, data.y.shape[1]) and a.mode == "mc"
    np.testing.assert_array_equal(a.mean, b.mean)
    assert np.all(a.std > 0)


@pytest.mark.parametrize("true_scale", [0.5, 2.0, 3.0])
def test_calibration_recovers_the_true_scale(true_scale):
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.5, 2.0, size=(4000, 10))
    y = true_scale * sigma * rng.normal(size=sigma.shape)
    cal = fit_calibration(y, np.zeros_like(y), sigma)
    assert cal["scale"][0] == pytest.approx(true_scale, rel=0.03)
    assert cal["coverage_1sigma"] == pytest.approx(0.683, abs=0.01)
    assert cal["coverage_2sigma"] == pytest.approx(0.954, abs=0.01)


def test_energy_calibration_follows_a_scale_that_varies_with_energy():
    rng = np.random.default_rng(2)
    scale = np.linspace(0.5, 3.0, 40)
    sigma = np.ones((3000, 40))
    y = scale * rng.normal(size=sigma.shape)
    cal = fit_calibration(y, np.zeros_like(y), sigma, kind="energy")
    np.testing.assert_allclose(cal["scale"][5:-5], scale[5:-5], rtol=0.08)


def test_calibration_curve_is_diagonal_for_calibrated_errors():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(2000, 20))
    expected, observed = calibration_curve(y, np.zeros_like(y), np.ones_like(y))
    np.testing.assert_allclose(observed, expected, atol=0.02)
    assert coverage(y, 0 * y, 0 * y + 1, 2) == pytest.approx(0.954, abs=0.01)


def test_calibration_needs_a_spread():
    with pytest.raises(XanesnetError, match="calibration needs a positive predicted sigma"):
        fit_calibration(np.ones((3, 4)), np.ones((3, 4)), np.zeros((3, 4)))


def test_save_load_keeps_calibration_and_threshold(tmp_path):
    data = synthetic()
    saved = train_model(data, quick_config(ensemble=3), tmp_path / "m", progress=False)
    unc = json.loads((tmp_path / "m" / "config.json").read_text())["uncertainty"]
    assert unc == json.loads(json.dumps(saved["uncertainty"]))
    assert unc["calibration"]["ensemble"]["scale"][0] > 0 and unc["trust"]["ensemble"]["threshold"] > 0
    pred = Predictor.from_bundle(tmp_path / "m").predict_features(data.x)
    raw = Predictor.from_bundle(tmp_path / "m").predict_features(data.x, calibrate=False)
    np.testing.assert_allclose(pred.std, raw.std * unc["calibration"]["ensemble"]["scale"][0])
    assert pred.threshold == unc["trust"]["ensemble"]["threshold"]
    assert np.mean(pred.trusted) > 0.8  # in-domain data mostly trusted


def test_trust_flag_in_cli_output(tmp_path, capsys):
    from test_training import SMALL

    from xanesnet.cli import main
    from xanesnet.pipeline import TrainingSet

    structures = [EXAMPLES / f for f in ("ferrocene.xyz", "hexacyanoferrate.xyz")]
    from xanesnet.io.structures import read_structure

    x = SMALL.featurize([read_structure(p) for p in structures])
    rng = np.random.default_rng(0)
    xs = np.repeat(x, 30, axis=0) * rng.normal(1, 0.01, size=(60, x.shape[1]))
    energy = np.linspace(7100, 7160, 20)
    y = np.tanh(xs[:, :2] @ rng.normal(size=(2, 20)) * 0.01) + 1
    train_model(TrainingSet(ids=[f"m{i}" for i in range(60)], x=xs, y=y, energy=energy), quick_config(ensemble=3), tmp_path / "m",
                progress=False)
    assert main(["predict", "--model", str(tmp_path / "m"), str(structures[0]), "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "o.json")]) == 0
    out, err = capsys.readouterr()
    assert "uncertainty score" in out and ("trusted" in out)
    entry = json.loads((tmp_path / "o.json").read_text())["ferrocene"]
    assert entry["uncertainty_mode"] == "ensemble" and isinstance(entry["trusted"], bool)
    assert entry["extrapolation"]["training_std_beyond_range"] >= 0
    header = (tmp_path / "o" / "ferrocene.xanes.txt").read_text()
    assert "# uncertainty_score = " in header and "# trust = " in header
    # a far-out molecule: the flag trips and the CLI warns, naming it
    assert main(["predict", "--model", str(tmp_path / "m"), str(EXAMPLES / "tetrachloroferrate.xyz"), "--out", str(tmp_path / "o2")]) == 0
    out, err = capsys.readouterr()
    assert "NOT trusted" in out and "warning: tetrachloroferrate: prediction NOT trusted" in err


def test_values_beyond_the_training_range_are_clipped_flagged_and_named(tmp_path):
    data = synthetic()
    train_model(data, quick_config(ensemble=3), tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    scaler = predictor.bundle.x_scaler
    assert np.all(scaler.min_ >= data.x.min(0)) and np.all(scaler.max_ <= data.x.max(0))
    names = predictor.bundle.config["feature_names"]
    # in the training range: nothing changes, nothing is named
    inside = np.clip(data.x[:5], scaler.min_, scaler.max_)
    pred = predictor.predict_features(inside, ids=list("abcde"))
    assert np.all(pred.extrapolation == 0) and pred.extrapolated_feature == [None] * 5
    legacy = Predictor.from_bundle(tmp_path / "m")
    legacy.bundle.x_scaler.min_ = legacy.bundle.x_scaler.max_ = None  # a model saved before the range was kept
    unchecked = legacy.predict_features(inside)
    np.testing.assert_array_equal(pred.mean, unchecked.mean)
    assert unchecked.extrapolation is None and unchecked.extrapolated_feature is None
    # one feature far beyond anything seen: clipped to the limit, flagged, and named in the warning
    far, edge = inside[:1].copy(), inside[:1].copy()
    far[0, 3] = scaler.max_[3] + 1e4 * scaler.std_[3]
    edge[0, 3] = scaler.max_[3] + EXTRAPOLATION_LIMIT * scaler.std_[3]
    out = predictor.predict_features(far, ids=["weird"])
    np.testing.assert_array_equal(out.mean, predictor.predict_features(edge).mean)
    assert out.extrapolation[0] == pytest.approx(1e4) and out.extrapolated_feature == [names[3]]
    assert not out.trusted[0]
    assert out.warnings() and out.warnings()[0].startswith("weird: prediction NOT trusted") and names[3] in out.warnings()[0]
    # just inside the limit: still trusted as far as the range goes
    assert predictor.predict_features(edge).extrapolation[0] == pytest.approx(EXTRAPOLATION_LIMIT)


def test_a_feature_constant_in_training_flags_any_other_value(tmp_path):
    data = synthetic()
    data.x[:, 5] = 0.0  # e.g. an element group no training molecule has
    train_model(data, quick_config(ensemble=2), tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    seen, new = data.x[:1].copy(), data.x[:1].copy()
    new[0, 5] = 0.3
    out = predictor.predict_features(new, ids=["new"])
    assert np.isinf(out.extrapolation[0]) and not out.trusted[0]
    np.testing.assert_array_equal(out.mean, predictor.predict_features(seen).mean)  # set back to the training value
    assert "had one value for every training molecule" in out.warnings()[0]
    assert predictor.bundle.config["feature_names"][5] in out.warnings()[0]


def test_standardizer_state_keeps_the_training_range_and_loads_without_it():
    from xanesnet.transforms import Standardizer

    v = np.random.default_rng(0).normal(size=(50, 4))
    s = Standardizer.from_state(json.loads(json.dumps(Standardizer().fit(v).state())))
    np.testing.assert_array_equal(s.min_, v.min(0))
    np.testing.assert_array_equal(s.max_, v.max(0))
    old = Standardizer.from_state({"kind": "standardize", "mean": [0.0] * 4, "std": [1.0] * 4})
    assert old.min_ is None and old.max_ is None


def superoxo(folder):
    """An end-on Fe-superoxo adduct (O-O 1.25 A) made from [Fe(H2O)6]2+: no training complex has an O donor bonded to an O."""
    lines = (EXAMPLES / "hexaaquairon.xyz").read_text().splitlines()
    atoms = lines[2:-3]  # drop the last water (O at -z and its two H)
    atoms += ["O 0.0 0.0 -1.80", f"O {1.25 * np.sin(np.radians(60)):.5f} 0.0 {-1.80 - 1.25 * np.cos(np.radians(60)):.5f}"]
    path = folder / "fe_superoxo.xyz"
    path.write_text(f"{len(atoms)}\nCSD_code = fe_superoxo | q = 2 | S = 2\n" + "\n".join(atoms) + "\n")
    return path


def test_shipped_model_flags_an_unseen_ligand_and_keeps_the_spectrum_finite(tmp_path, capsys):
    """Without the range check the networks extrapolate to intensities of +-50 for the superoxo adduct; with it
    the spectrum stays in the range of real spectra and the warning names the O-O channel."""
    from xanesnet.cli import main

    path = superoxo(tmp_path)
    assert main(["predict", "--model", str(ROOT / "models" / "fe-k-xanes"), str(path), "--out", str(tmp_path / "o")]) == 0
    _, err = capsys.readouterr()
    assert "warning: fe_superoxo: prediction NOT trusted" in err and "D_O:O[" in err
    spectrum = np.loadtxt(tmp_path / "o" / "fe_superoxo.xanes.txt")
    assert np.all(np.isfinite(spectrum)) and -0.1 < spectrum[:, 1].min() and spectrum[:, 1].max() < 2.0


def test_labelling_order_puts_unseen_geometries_first_then_the_least_sure():
    score = np.array([0.2, 0.9, 0.5, 0.9, 0.1, 0.3])
    beyond = np.array([0.0, 3.0, 0.0, 0.0, 50.0, 2e3])  # 3.0 is inside the limit: ranked by its score
    assert labelling_order(score, beyond).tolist() == [5, 4, 1, 3, 2, 0]  # ties (1, 3) keep the input order
    assert labelling_order(score).tolist() == [1, 3, 2, 5, 0, 4]


def test_diverse_selection_spreads_over_families_that_top_uncertainty_would_skip():
    """Two families of candidates: 20 near-copies the model is a little less sure of, and 80 others."""
    from xanesnet.uncertainty import SELECTION_STRATEGIES, select_diverse, select_random, select_uncertain

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.01, (20, 8)) + 5.0, rng.normal(0, 1.0, (80, 8)) - 5.0])
    score = np.concatenate([rng.uniform(0.9, 1.0, 20), rng.uniform(0.5, 0.8, 80)])
    top = select_uncertain(score, None, x, 10)
    assert set(top) <= set(range(20))  # all ten from the family of near-copies
    picks = select_diverse(score, None, x, 10, seed=0)
    assert len(set(picks)) == 10 and 3 <= (picks >= 20).sum() <= 9  # both families
    assert picks.tolist() == sorted(picks, key=lambda k: -score[k])  # in labelling order
    np.testing.assert_array_equal(picks, select_diverse(score, None, x, 10, seed=0))  # reproducible
    beyond = np.zeros(100)
    beyond[70] = 1e3
    assert 70 in select_diverse(score, beyond, x, 10, seed=0)[:1]  # an unseen geometry comes first
    beyond[[3, 50, 90]] = [20.0, 30.0, 40.0]
    assert select_diverse(score, beyond, x, 2, seed=0).tolist() == [70, 90]  # more unseen than picks: the furthest out
    assert sorted(select_diverse(score, None, x, 200)) == list(range(100))  # a small pool: everything
    assert len(set(select_random(score, None, x, 10, seed=1))) == 10
    assert list(SELECTION_STRATEGIES) == ["diverse", "uncertainty", "random"]


def test_select_ranks_a_pool_for_the_next_simulations(tmp_path, capsys):
    from xanesnet.cli import main

    pool = tmp_path / "pool"
    pool.mkdir()
    for name in ("ferrocene", "hexacyanoferrate", "hexaaquairon", "iron_pentacarbonyl", "tetrachloroferrate"):
        (pool / f"{name}.xyz").write_text((EXAMPLES / f"{name}.xyz").read_text())
    superoxo(pool)
    out = tmp_path / "sel" / "picks.tsv"
    assert main(["select", str(pool), "-n", "4", "--strategy", "uncertainty", "--out", str(out)]) == 0
    assert "ranked 6 candidates with fe-k-xanes: 4 not trusted; wrote 4 picked by 'uncertainty'" in capsys.readouterr().out
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0][:4] == ["rank", "name", "path", "uncertainty_score"] and len(rows) == 5
    assert rows[1][1] == "fe_superoxo" and rows[1][5].startswith("D_O:O[") and rows[1][6] == "false"
    beyond = [float(r[4]) > EXTRAPOLATION_LIMIT for r in rows[1:]]
    assert beyond == sorted(beyond, reverse=True)  # unseen geometries first ([Fe(H2O)6]2+'s O-H is one, at 10.2)
    scores = [float(r[3]) for r, b in zip(rows[1:], beyond) if not b]
    assert scores and scores == sorted(scores, reverse=True)
    assert all((pool / f"{r[1]}.xyz") == type(pool)(r[2]) for r in rows[1:])
    # a pool that needs two models, and a bad -n: one-line errors, exit 2, no table
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("ferrocene", "tetraamminecopper"):
        (mixed / f"{name}.xyz").write_text((EXAMPLES / f"{name}.xyz").read_text())
    assert main(["select", str(mixed), "--out", str(tmp_path / "no.tsv")]) == 2
    assert "select ranks for one model at a time" in capsys.readouterr().err
    assert main(["select", str(pool), "-n", "0", "--out", str(tmp_path / "no.tsv")]) == 2
    assert "-n must be at least 1" in capsys.readouterr().err
    assert main(["select", str(pool), "--strategy", "smart", "--out", str(tmp_path / "no.tsv")]) == 2
    assert "unknown --strategy 'smart'; choose from diverse, uncertainty, random" in capsys.readouterr().err
    assert not (tmp_path / "no.tsv").exists()
    # the default, diverse: 3 of the 6 from k-means on their descriptors, still in labelling order
    assert main(["select", str(pool), "-n", "3", "--out", str(out)]) == 0
    assert "wrote 3 picked by 'diverse'" in capsys.readouterr().out
    picked = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    assert len({r[1] for r in picked}) == 3 and picked[0][1] == "fe_superoxo"


def test_select_needs_a_model_with_an_error_bar(tmp_path, capsys):
    from test_training import SMALL

    from xanesnet.cli import main
    from xanesnet.io.structures import read_structure
    from xanesnet.pipeline import TrainingSet

    x = SMALL.featurize([read_structure(EXAMPLES / "ferrocene.xyz")])
    xs = np.repeat(x, 40, axis=0) * np.random.default_rng(0).normal(1, 0.01, size=(40, x.shape[1]))
    y = np.tanh(xs[:, :3] @ np.ones((3, 10)) * 0.01) + 1
    train_model(TrainingSet(ids=[f"m{i}" for i in range(40)], x=xs, y=y, energy=np.linspace(7100, 7160, 10)),
                quick_config(ensemble=1), tmp_path / "m", progress=False)  # one member, no dropout
    out = tmp_path / "picks.tsv"
    assert main(["select", "--model", str(tmp_path / "m"), str(EXAMPLES / "ferrocene.xyz"), "--out", str(out)]) == 2
    assert "gives no error bar" in capsys.readouterr().err and not out.exists()


def test_gaussian_process_gives_calibrated_predictive_std(tmp_path):
    data = synthetic(n=150)
    cfg = quick_config()
    cfg.model = {"kind": "gpr"}
    saved = train_model(data, cfg, tmp_path / "gp", holdout=0.2, progress=False)
    pred = Predictor.from_bundle(tmp_path / "gp").predict_features(data.x)
    assert pred.mode == "predictive" and np.all(pred.std > 0) and pred.samples.shape[0] == 1
    assert "predictive" in saved["uncertainty"]["calibration"]
    # far from the training inputs the GP falls back to its prior: a much larger sigma
    far = Predictor.from_bundle(tmp_path / "gp").predict_features(data.x[:5] + 50.0)
    assert far.std.mean() > 3 * pred.std.mean()


def test_several_absorbing_atoms_give_the_average_of_their_sites(tmp_path, capsys):
    """Fe2(CO)9: --absorber Fe predicts both Fe sites and averages them; the two mirror-equivalent sites agree."""
    from dataclasses import replace

    from xanesnet.cli import main
    from xanesnet.io.structures import read_structure

    sym = ROOT / "data" / "multinuclear" / "diiron_nonacarbonyl.xyz"
    s = read_structure(sym)
    pos = s.positions.copy()
    terminal = [i for i in range(len(s)) if s.symbols[i] == "C" and pos[i, 2] < -1.0]  # the lower Fe's terminal CO
    pos[terminal] += 0.06 * (pos[terminal] - pos[1]) / np.linalg.norm(pos[terminal] - pos[1], axis=1, keepdims=True)
    lines = [str(len(s)), "asym"] + [f"{e} {x:.8f} {y:.8f} {z:.8f}" for e, (x, y, z) in zip(s.symbols, replace(s, positions=pos).positions)]
    asym = tmp_path / "asym.xyz"
    asym.write_text("\n".join(lines) + "\n")
    mono = tmp_path / "ferrocene.xyz"
    mono.write_text((EXAMPLES / "ferrocene.xyz").read_text())

    predictor = Predictor.from_bundle(ROOT / "models" / "fe-k-xanes")
    pred, _ = predictor.predict_files([asym, mono, sym], absorber="Fe")
    assert pred.ids == ["asym", "ferrocene", "diiron_nonacarbonyl"] and pred.sites == [[0, 1], [0], [0, 1]]
    site0, site1 = (predictor.predict_files([asym], absorber=a)[0] for a in (0, 1))
    assert np.abs(site0.mean - site1.mean).max() > 1e-3  # the stretched site differs
    np.testing.assert_allclose(pred.mean[0], (site0.mean[0] + site1.mean[0]) / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pred.std[0], (site0.std[0] + site1.std[0]) / 2, rtol=1e-5, atol=1e-7)
    assert pred.score[0] == pytest.approx(max(site0.score[0], site1.score[0]), rel=1e-6)
    assert pred.trusted[0] == (site0.trusted[0] and site1.trusted[0])
    alone = predictor.predict_files([mono])[0]  # a one-site molecule in the batch is predicted as on its own
    np.testing.assert_allclose(pred.mean[1], alone.mean[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pred.std[1], alone.std[0], rtol=1e-5, atol=1e-7)
    a, b = (predictor.predict_files([sym], absorber=k)[0] for k in (0, 1))  # the mirror plane maps Fe 0 onto Fe 1
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pred.mean[2], a.mean[0], rtol=1e-5, atol=1e-7)

    out = tmp_path / "out"
    assert main(["predict", str(sym), "--absorber", "Fe", "--out", str(out), "--json", str(out / "p.json")]) == 0
    assert "average of 2 sites (atoms 0, 1)" in capsys.readouterr().out
    assert "# absorber_atoms = 0 1 (averaged)" in (out / "diiron_nonacarbonyl.xanes.txt").read_text().splitlines()
    assert json.loads((out / "p.json").read_text())["diiron_nonacarbonyl"]["absorber_atoms"] == [0, 1]
    # without --absorber: the one-line error says how to average; nothing written
    assert main(["predict", str(sym), "--out", str(tmp_path / "none")]) == 2
    assert "pass --absorber INDEX, or --absorber Fe to average over all of them" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    # featurize keeps one row per file: a symbol that occurs twice is an error there
    assert main(["featurize", str(sym), "--absorber", "Fe", "--out", str(tmp_path / "f.npz")]) == 2
    assert "Fe occurs 2 times (atoms 0, 1)" in capsys.readouterr().err and not (tmp_path / "f.npz").exists()
