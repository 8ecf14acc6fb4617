"""Permutation importance by window: synthetic models with known dependences, outputs and figures, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from xanesnet.analysis.importance import (
    RowPermutationModel,
    Window,
    default_windows,
    parse_window,
    permutation_importance_by_window,
    write_importance,
)
from xanesnet.analysis.plots import plot_importance, save_figure, spectrum_figure
from xanesnet.cli import main
from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import WACSF
from xanesnet.errors import XanesnetError
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor

SMALL = WACSF(n_g2=8, n_g4=8, zetas=(1.0, 2.0), r_max=5.0)  # G1, 8 G2, 2 G4 widths x 4 = 17 features
ENERGY = np.linspace(7100, 7160, 40)
A = SMALL.feature_names.index("G2[mu=1.643]")
B = SMALL.feature_names.index("G4[eta=0.5000,lambda=-1,zeta=2]")
LOW, HIGH = "low:7100:7128", "high:7132:7160"


def peak(centre: float) -> np.ndarray:
    return np.exp(-((ENERGY - centre) / 4) ** 2)


def synthetic_model(path, *, two_features: bool, n=300):
    """A model trained through the real bundle machinery: feature A drives a peak at 7115 eV, B (if used) one at 7145 eV."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, SMALL.n_features))
    y = (1 + 0.5 * np.tanh(x[:, A]))[:, None] * peak(7115)
    y = y + ((1 + 0.5 * np.tanh(x[:, B]))[:, None] if two_features else 1.0) * peak(7145)
    config = Config(descriptor=SMALL.to_dict(), model={"kind": "mlp", "hidden": [64, 64], "activation": "silu", "dropout": 0.0},
                    training=TrainingSettings(epochs=150, patience=30, batch_size=32), seed=0)
    train_model(TrainingSet(ids=[f"m{i}" for i in range(n)], x=x, y=y, energy=ENERGY), config, path, progress=False)
    return Predictor.from_bundle(path), x, y


@pytest.fixture(scope="module")
def one_feature(tmp_path_factory):
    return synthetic_model(tmp_path_factory.mktemp("one") / "m", two_features=False)


@pytest.fixture(scope="module")
def two_features(tmp_path_factory):
    return synthetic_model(tmp_path_factory.mktemp("two") / "m", two_features=True)


def test_the_one_feature_the_model_uses_ranks_first_and_the_rest_near_zero(one_feature):
    predictor, x, y = one_feature
    res = permutation_importance_by_window(predictor, x, y, windows=["all:7100:7160"], n_repeats=3, seed=0)
    ranking = res.ranking("all")
    assert ranking[0][0] == SMALL.feature_names[A]
    top = ranking[0][1]
    assert top > 10 * res.baseline_mse["all"]
    assert all(abs(mean) < 0.02 * top for _, mean, _ in ranking[1:])
    assert res.features["all"].shape == (SMALL.n_features, 3) and res.reference == "spectra"


def test_restricting_the_window_changes_the_ranking(two_features):
    predictor, x, y = two_features
    res = permutation_importance_by_window(predictor, x, y, windows=[LOW, HIGH], n_repeats=3, seed=0)
    low, high = res.ranking("low"), res.ranking("high")
    assert low[0][0] == SMALL.feature_names[A] and high[0][0] == SMALL.feature_names[B]
    assert all(abs(m) < 0.02 * low[0][1] for _, m, _ in low[1:])
    assert all(abs(m) < 0.02 * high[0][1] for _, m, _ in high[1:])
    # groups: B's G4 width block leads the high window (after the family that contains it)
    groups = [name for name, _, _ in res.ranking("high", "groups") if not name.startswith("all ")]
    assert groups[0] == "G4[eta=0.5000]"
    assert [name for name, _, _ in res.ranking("low", "groups") if not name.startswith("all ")][0] == "G2[mu=1.643]"


def test_without_reference_spectra_the_model_mean_is_the_reference(two_features):
    predictor, x, _ = two_features
    res = permutation_importance_by_window(predictor, x[:60], None, windows=[HIGH], n_repeats=2, seed=1)
    assert res.reference == "model mean" and res.baseline_mse["high"] == 0.0
    assert res.ranking("high")[0][0] == SMALL.feature_names[B]


def test_one_seed_drives_the_shuffles(two_features):
    predictor, x, y = two_features
    run = lambda seed: permutation_importance_by_window(predictor, x[:80], y[:80], windows=[LOW], n_repeats=2, seed=seed)
    a, b, c = run(4), run(4), run(5)
    np.testing.assert_array_equal(a.features["low"], b.features["low"])
    np.testing.assert_array_equal(a.groups["low"], b.groups["low"])
    assert not np.array_equal(a.features["low"], c.features["low"])


def test_a_group_is_scrambled_with_one_permutation_and_nothing_else_moves():
    x = np.arange(40.0).reshape(10, 4)
    model = RowPermutationModel(lambda f: f, x, [(0,), (1,), (2,), (3,), (1, 2)])
    rows = model.index_matrix()
    perm = np.random.default_rng(0).permutation(10)
    rows[:, 4] = perm
    out = model.predict(rows)
    np.testing.assert_array_equal(out[:, [1, 2]], x[perm][:, [1, 2]])
    np.testing.assert_array_equal(out[:, [0, 3]], x[:, [0, 3]])
    np.testing.assert_array_equal(model.predict(model.index_matrix()), x)


def test_feature_groups_of_the_default_preset():
    from xanesnet.descriptors import preset

    descriptor = WACSF(element_groups=("H", "C"), charge_spin=True)
    names = descriptor.feature_names
    groups = descriptor.feature_groups()
    assert list(groups)[:2] == ["G1", "G2[mu=0.500]"]
    assert len(groups["G4[eta=0.5000]"]) == 8 and len(groups["G2_H"]) == 16 and len(groups["G2_other"]) == 16
    assert [names[i] for i in groups["charge+spin"]] == ["charge", "spin"]
    assert len(groups["all G2"]) == 32 and len(groups["all G4"]) == 64 and len(groups["all element G2"]) == 48
    assert sum(len(v) for k, v in groups.items() if not k.startswith("all ")) == len(names)
    default = preset("default").feature_names
    groups = preset("default").feature_groups()
    # G1, 32 G2 centres, 8 G4 widths, 7 element channels, 15 angular pairs, 4 shell and 4 x 5 donor channels, 6 families
    assert len(groups) == 1 + 32 + 8 + 7 + 15 + 4 + 20 + 6
    assert len(groups["A_C-N"]) == 32 and len(groups["S_N"]) == 16 and len(groups["D_C:N"]) == 11
    assert len(groups["all angular pairs"]) == 480 and len(groups["all donor environments"]) == 220
    assert sum(len(v) for k, v in groups.items() if not k.startswith("all ")) == len(default)


def test_default_windows_split_at_the_mean_main_peak():
    y = np.vstack([peak(7120), peak(7130)])
    edge, post = default_windows(ENERGY, y)
    assert (edge.name, post.name) == ("edge", "post-edge")
    assert edge.e_min == 7100 and post.e_max == 7160
    assert edge.e_max == post.e_min == pytest.approx(7125, abs=0.01)


def test_tables_json_and_figures_are_written(two_features, tmp_path):
    predictor, x, y = two_features
    res = permutation_importance_by_window(predictor, x[:50], y[:50], windows=[LOW, HIGH], n_repeats=2, seed=0)
    written = write_importance(res, tmp_path) + plot_importance(res, tmp_path / "importance")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written) == [
        "importance.json", "importance.png", "importance.svg", "importance_features.csv", "importance_groups.csv"]
    rows = (tmp_path / "importance_features.csv").read_text().splitlines()
    assert rows[0] == "window,e_min_ev,e_max_ev,name,n_columns,importance_mean,importance_std,baseline_mse"
    assert len(rows) == 1 + 2 * SMALL.n_features and '"G4[eta=0.5000,lambda=1,zeta=1]"' in rows[10]
    data = json.loads((tmp_path / "importance.json").read_text())
    assert data["seed"] == 0 and data["n_repeats"] == 2 and data["n_molecules"] == 50
    assert np.array(data["features"]["high"]["repeats"]).shape == (SMALL.n_features, 2)
    np.testing.assert_allclose(data["grouped"]["low"]["mean"], res.mean("low", "groups"))
    assert (tmp_path / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_save_leaves_the_old_figure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    fig = spectrum_figure(ENERGY, peak(7120), 0.1 * peak(7120), reference=(ENERGY, peak(7121)), title="x")
    save_figure(fig, tmp_path / "s.png", formats=("png",))
    before = (tmp_path / "s.png").read_bytes()
    monkeypatch.setattr(Figure, "savefig", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "s", formats=("png",))
    assert (tmp_path / "s.png").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.png"]


@pytest.mark.parametrize("window, message", [
    ("edge:7100", r"^malformed window 'edge:7100': expected NAME:EMIN:EMAX with energies in eV, e\.g\. edge:7100:7135$"),
    ("edge:a:7120", r"^malformed window 'edge:a:7120': expected NAME:EMIN:EMAX"),
    (":7100:7120", r"^malformed window ':7100:7120': expected NAME:EMIN:EMAX"),
    ("edge:7120:7110", r"^malformed window 'edge:7120:7110': EMIN must be below EMAX$"),
    ("edge:7050:7120", r"^window 'edge' \(7050-7120 eV\) is outside the model's grid \(7100-7160 eV\)$"),
    ("edge:7120.5:7122", r"^window 'edge' \(7120\.5-7122 eV\) holds 1 grid point\(s\) of the model; at least 3 are needed$"),
])
def test_bad_windows(two_features, window, message):
    predictor, x, y = two_features
    with pytest.raises(XanesnetError, match=message):
        permutation_importance_by_window(predictor, x[:20], y[:20], windows=[window], n_repeats=1, seed=0)


def test_bad_groups_and_repeated_window_names(two_features):
    predictor, x, y = two_features
    with pytest.raises(XanesnetError, match=r"^unknown feature group 'G9'; known: G1, G2\[mu=0\.500\] \.\. G2\[mu=4\.500\] "
                                            r"\(8 G2 centres\), G4\[eta=0\.5000\], G4\[eta=0\.0247\], all G2, all G4$"):
        permutation_importance_by_window(predictor, x[:20], y[:20], groups=["G1", "G9"], windows=[LOW])
    with pytest.raises(XanesnetError, match=r"^window name 'low' is used twice$"):
        permutation_importance_by_window(predictor, x[:20], y[:20], windows=[LOW, "low:7130:7160"])
    res = permutation_importance_by_window(predictor, x[:20], y[:20], groups=["G4[eta=0.5000]"], windows=["w:7110:7150.5"],
                                           n_repeats=1, seed=0)
    assert list(res.group_columns) == ["G4[eta=0.5000]"] and res.groups["w"].shape == (1, 1)
    assert res.windows == [Window("w", 7110.0, 7150.5)]
    assert parse_window(" pre : 7100 : 7110") == Window("pre", 7100.0, 7110.0)


# --- the command line, on 20 molecules of the shared Fe sample -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from conftest import shared_data

    sample = shared_data("fe_k_fdmnes_sample")
    root = tmp_path_factory.mktemp("imp_tiny")
    for sub in ("xyz", "xanes"):
        (root / sub).mkdir()
    for p in sorted((sample / "xyz").glob("*.xyz"))[:20]:
        shutil.copy(p, root / "xyz" / p.name)
        shutil.copy(sample / "xanes" / f"{p.stem}.txt", root / "xanes" / f"{p.stem}.txt")
    (root / "config.json").write_text(json.dumps({
        "descriptor": {"kind": "wacsf", "n_g2": 8, "n_g4": 8, "zetas": [1.0, 2.0], "r_max": 5.0, "element_groups": ["H", "C"],
                       "n_element_g2": 4},
        "model": {"kind": "mlp", "hidden": [32], "activation": "silu", "dropout": 0.0},
        "training": {"epochs": 10, "patience": 5, "batch_size": 8, "ensemble": 2}}))
    assert main(["train", "--xyz", str(root / "xyz"), "--spectra", str(root / "xanes"), "--out", str(root / "m"),
                 "--config", str(root / "config.json"), "--seed", "1", "--no-cache", "--no-progress"]) == 0
    return root


def test_cli_importance_writes_tables_and_figures(tiny, tmp_path, capsys):
    out = tmp_path / "imp"
    code = main(["importance", "--model", str(tiny / "m"), "--xyz", str(tiny / "xyz"), "--spectra", str(tiny / "xanes"),
                 "--repeats", "2", "--seed", "3", "--max-samples", "12", "--no-cache", "--no-progress", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and "on 12 molecules (spectra as reference), 2 repeats, seed 3" in stdout
    assert "  edge (7097-" in stdout and "  post-edge (" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["importance.json", "importance.png", "importance.svg",
                                                     "importance_features.csv", "importance_groups.csv"]
    data = json.loads((out / "importance.json").read_text())
    assert [w["name"] for w in data["windows"]] == ["edge", "post-edge"] and len(data["ids"]) == 12


def test_cli_bad_window_is_one_line_and_exit_2(tiny, tmp_path, capsys):
    code = main(["importance", "--model", str(tiny / "m"), "--xyz", str(tiny / "xyz"), "--windows", "edge:7000:7120",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err == ("xanesnet importance: error: window 'edge' (7000-7120 eV) is outside the model's grid "
                                 "(7097-7172 eV)\n")
    assert not (tmp_path / "o").exists()


def test_cli_predict_and_evaluate_plots(tiny, tmp_path, capsys):
    from conftest import EXAMPLES

    xyz = tiny / "xyz"
    assert main(["predict", "--model", str(tiny / "m"), str(xyz), str(EXAMPLES / "ferrocene.xyz"), "--out", str(tmp_path / "p"),
                 "--plot", "--reference", str(tiny / "xanes"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "no reference spectrum for 1 molecule(s): ferrocene" in err
    assert len(list((tmp_path / "p").glob("*.png"))) == len(list((tmp_path / "p").glob("*.txt"))) == 21
    assert main(["evaluate", "--model", str(tiny / "m"), "--xyz", str(xyz), "--spectra", str(tiny / "xanes"),
                 "--plot", str(tmp_path / "e"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["evaluation.png", "evaluation.svg"]
    assert main(["predict", "--model", str(tiny / "m"), str(xyz), "--reference", str(tiny / "xanes")]) == 2
    assert capsys.readouterr().err.endswith("error: --reference needs --plot\n")


def test_a_model_without_distance_features_gets_the_group_chart_only(tmp_path):
    from xanesnet.analysis.importance import Importance

    names = ["x0", "x1", "x2"]
    w = Window("all", 7100.0, 7160.0)
    rng = np.random.default_rng(0)
    res = Importance(windows=[w], energy=ENERGY, feature_names=names, group_columns={n: [i] for i, n in enumerate(names)},
                     baseline_mse={"all": 0.1}, features={"all": rng.random((3, 2))}, groups={"all": rng.random((3, 2))},
                     ids=["a", "b"], n_repeats=2, seed=0, reference="spectra")
    assert list(res.group_columns) == names
    assert [p.name for p in plot_importance(res, tmp_path / "imp", formats=("png",))] == ["imp.png"]


@pytest.mark.parametrize("r", [1.83, 2.41, 3.2])
def test_radial_channels_put_each_column_at_its_centre(r):
    """One neighbour at distance r: within each radial channel the largest feature is the one centred nearest r
    (what importance-by-distance plots rely on), and the channels' columns are the descriptor's own groups."""
    from xanesnet.descriptors import preset
    from xanesnet.io.structures import Structure

    descriptor = preset("default")
    s = Structure(name="pair", numbers=np.array([26, 7]), positions=np.array([[0.0, 0, 0], [0, 0, r]]))
    row = descriptor.create(s, 0)
    radial = descriptor.radial_channels()
    assert set(radial) == {"all G2", "all element G2", "all first shell"}
    groups = descriptor.feature_groups()
    for family, channels in radial.items():
        assert sorted(c for cols, _ in channels.values() for c in cols) == sorted(groups[family])
        for cols, mu in channels.values():
            assert len(cols) == len(mu) and np.all(np.diff(mu) > 0)
        cols, mu = channels["G2" if family == "all G2" else "N"]
        if mu[0] <= r <= mu[-1]:
            assert abs(mu[int(np.argmax(row[cols]))] - r) <= 0.5 * np.min(np.diff(mu)) + 1e-9, family
