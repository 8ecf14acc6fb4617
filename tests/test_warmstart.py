"""``xanesnet train --init-from MODEL_DIR``: round trip, continued training, member mapping, refusing a mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xanesnet.cli import main
from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import WACSF
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor
from xanesnet.warmstart import WarmStart

SMALL = WACSF(n_g2=8, n_g4=8, zetas=(1.0, 2.0), r_max=5.0)
MODEL = {"kind": "mlp", "hidden": [32, 32], "activation": "silu", "dropout": 0.0}
TRAINING = {"epochs": 30, "patience": 10, "batch_size": 16, "ensemble": 2}


def config(seed=1, **training):
    return Config(descriptor=SMALL.to_dict(), model=dict(MODEL), training=TrainingSettings(**{**TRAINING, **training}), seed=seed)


@pytest.fixture(scope="module")
def data():
    """Spectra with a peak whose position and height follow the descriptor."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, SMALL.n_features))
    energy = np.linspace(7100, 7160, 40)
    y = np.exp(-((energy - 7130 - 5 * np.tanh(x[:, [1]])) / 4) ** 2) * (1 + 0.3 * np.tanh(x[:, [2]]))
    return TrainingSet(ids=[f"m{i}" for i in range(len(x))], x=x, y=y, energy=energy)


@pytest.fixture(scope="module")
def source(tmp_path_factory, data):
    """A two-member model (seed 1)."""
    path = tmp_path_factory.mktemp("warm") / "src"
    train_model(data, config(), path, progress=False)
    return path


def test_vanishing_learning_rate_reproduces_the_source(data, source, tmp_path):
    """Same data, same seed, lr ~ 0: the scalers, split and weights are the source's, so are the predictions."""
    train_model(data, config(lr=1e-12, epochs=1), tmp_path / "ft", init=WarmStart.load(source), progress=False)
    src, ft = Predictor.from_bundle(source), Predictor.from_bundle(tmp_path / "ft")
    a, b = src.predict_features(data.x), ft.predict_features(data.x)
    np.testing.assert_allclose(b.samples, a.samples, rtol=1e-5, atol=1e-6 * np.abs(a.samples).max())
    np.testing.assert_allclose(b.std, a.std, rtol=1e-4)
    prov = ft.bundle.config["init_from"]
    assert prov["model"] == "src" and prov["weights_sha256"] == src.bundle.config["weights_sha256"]
    assert prov["training_data_sha256"] == src.bundle.config["training_data_sha256"] and prov["members"] == [0, 1]


def test_more_members_than_the_source_cycle_through_its_members(data, source, tmp_path):
    train_model(data, config(lr=1e-12, epochs=1, ensemble=3), tmp_path / "ft", init=WarmStart.load(source), progress=False)
    a = Predictor.from_bundle(source).predict_features(data.x).samples
    b = Predictor.from_bundle(tmp_path / "ft")
    assert b.bundle.config["init_from"]["members"] == [0, 1, 0]
    np.testing.assert_allclose(b.predict_features(data.x).samples, a[[0, 1, 0]], rtol=1e-5, atol=1e-6 * np.abs(a).max())


def test_training_continues_from_the_source(data, source, tmp_path):
    """One epoch from the source's weights is far better than one epoch from random weights."""
    ft = train_model(data, config(epochs=1), tmp_path / "ft", init=WarmStart.load(source), progress=False)
    scratch = train_model(data, config(epochs=1), tmp_path / "scratch", progress=False)
    src = json.loads((source / "config.json").read_text())
    loss = {k: [h["best_val_loss"] for h in c["history"]] for k, c in (("ft", ft), ("scratch", scratch), ("src", src))}
    assert max(loss["ft"]) < 0.5 * min(loss["scratch"])
    assert max(loss["ft"]) < 2 * max(loss["src"])


def test_settings_come_from_the_source(source):
    """Without a config file the CLI adopts the source's settings, not the package defaults (which would not fit)."""
    cfg = Config()
    ws = WarmStart.load(source)
    ws.adopt(cfg)
    ws.check(cfg)
    assert cfg.model.to_dict() == json.loads((source / "config.json").read_text())["model"]


def test_architecture_mismatch_is_one_line_before_reading_data(source, tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"descriptor": SMALL.to_dict(), "model": {**MODEL, "hidden": [16]}}))
    code = main(["train", "--xyz", str(tmp_path / "absent"), "--spectra", str(tmp_path / "absent"), "--init-from", str(source),
                 "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "ft"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip() == (f"xanesnet train: error: {source}: cannot start from this model's weights: "
                           "model settings differ (hidden: [16] here, [32, 32] in the model)")
    assert not (tmp_path / "ft").exists()


def test_descriptor_mismatch_names_what_differs(source, tmp_path, capsys):
    code = main(["train", "--xyz", str(tmp_path / "absent"), "--spectra", str(tmp_path / "absent"), "--preset", "xanesnet",
                 "--init-from", str(source), "--out", str(tmp_path / "ft"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{source}: cannot start from this model's weights: descriptor settings differ (" in err
    assert "n_g2: 16 here, 8 in the model" in err


def test_output_size_mismatch(data, source, tmp_path):
    short = TrainingSet(ids=data.ids, x=data.x, y=data.y[:, :30], energy=data.energy[:30])
    with pytest.raises(Exception, match=r"cannot start from this model's weights: 30 energy points here, 40 in the model "
                                        r"\(7100-7160 eV\)"):
        train_model(short, config(), tmp_path / "ft", init=WarmStart.load(source), progress=False)
    assert not (tmp_path / "ft").exists()


def test_missing_source_model(tmp_path, capsys):
    code = main(["train", "--features", str(tmp_path / "d.npz"), "--init-from", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "ft"), "--no-progress"])
    assert code == 2 and "nope: no such model directory" in capsys.readouterr().err


def two_groups(data):
    """``data`` plus a second group, peaks 8 grid points lower, told apart by a last 0/1 column (an element one-hot)."""
    x = np.vstack([np.hstack([data.x, np.zeros((len(data.x), 1))]), np.hstack([data.x, np.ones((len(data.x), 1))])])
    shifted = np.hstack([data.y[:, 8:], np.repeat(data.y[:, -1:], 8, axis=1)])
    return x, np.vstack([data.y, shifted])


def test_fine_tune_keeps_the_source_scaling_and_a_vanishing_step_keeps_its_predictions(data):
    from xanesnet.bundle import Bundle, model_config
    from xanesnet.training import fine_tune, train

    x, y = two_groups(data)
    source = train(x, y, config(), progress=False)
    group = np.flatnonzero(x[:, -1] == 1)
    val = np.flatnonzero(np.isin(group, source.val_index))
    tuned = fine_tune(source, x[group], y[group], val, TrainingSettings(lr=1e-12, epochs=1, patience=1, batch_size=16),
                      progress=False)
    assert tuned.x_scaler is source.x_scaler and tuned.y_transform is source.y_transform
    assert len(tuned.members) == 2 and tuned.config.training.ensemble == 2
    assert np.array_equal(tuned.val_index, val)

    def predict(trained):
        cfg = model_config(trained, data.energy, [f"x{i}" for i in range(x.shape[1])])
        return Predictor(Bundle(path=None, config=cfg, members=trained.members)).predict_features(x[group]).mean

    np.testing.assert_allclose(predict(tuned), predict(source), atol=1e-5)


def test_fine_tuning_on_one_group_fits_that_group_better(data):
    from xanesnet.bundle import Bundle, model_config
    from xanesnet.training import fine_tune, train

    x, y = two_groups(data)
    source = train(x, y, config(epochs=15, patience=15), progress=False)
    group = np.flatnonzero(x[:, -1] == 1)
    val = np.flatnonzero(np.isin(group, source.val_index))
    tuned = fine_tune(source, x[group], y[group], val, TrainingSettings(lr=1e-3, epochs=60, patience=60, batch_size=16),
                      progress=False)
    fit = np.setdiff1d(np.arange(len(group)), val)

    def mse(trained):
        cfg = model_config(trained, data.energy, [f"x{i}" for i in range(x.shape[1])])
        pred = Predictor(Bundle(path=None, config=cfg, members=trained.members)).predict_features(x[group][fit]).mean
        return float(np.mean((pred - y[group][fit]) ** 2))

    assert mse(tuned) < 0.8 * mse(source)


def test_fine_tune_refuses_data_of_another_width(data):
    from xanesnet.errors import XanesnetError
    from xanesnet.training import fine_tune, train

    source = train(data.x, data.y, config(ensemble=1), progress=False)
    with pytest.raises(XanesnetError, match="do not fit the source network"):
        fine_tune(source, data.x[:, :-1], data.y, np.arange(5), TrainingSettings(), progress=False)
