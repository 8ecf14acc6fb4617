"""Training, saving and loading: reproducibility, round trips, and refusing broken models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xanesnet.bundle import load_bundle
from xanesnet.config import Config, TrainingSettings, load_config
from xanesnet.descriptors import WACSF
from xanesnet.errors import XanesnetError
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor
from xanesnet.transforms import PCA, Identity, Standardizer

SMALL = WACSF(n_g2=8, n_g4=8, zetas=(1.0, 2.0), r_max=5.0)


def synthetic(n=120, seed=0):
    """Spectra that depend smoothly on the descriptor: a peak whose position and height track x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SMALL.n_features))
    energy = np.linspace(7100, 7160, 40)
    centre = 7130 + 5 * np.tanh(x[:, 1])
    height = 1 + 0.3 * np.tanh(x[:, 2])
    y = height[:, None] * np.exp(-((energy - centre[:, None]) / 4) ** 2)
    return TrainingSet(ids=[f"m{i}" for i in range(n)], x=x, y=y, energy=energy)


def quick_config(seed=1, **training):
    t = {"epochs": 30, "patience": 10, "batch_size": 16, "ensemble": 1, **training}
    return Config(descriptor=SMALL.to_dict(), model={"kind": "mlp", "hidden": [32, 32], "activation": "silu", "dropout": 0.0},
                  training=TrainingSettings(**t), seed=seed)


def test_round_trip_gives_identical_predictions(tmp_path):
    data = synthetic()
    saved = train_model(data, quick_config(), tmp_path / "m", progress=False)
    from xanesnet.bundle import Bundle
    from xanesnet.training import train

    trained = train(data.x, data.y, quick_config(), progress=False)  # same seed, same data
    pred = Predictor.from_bundle(tmp_path / "m").predict_features(data.x)
    again = Predictor.from_bundle(tmp_path / "m").predict_features(data.x)
    np.testing.assert_array_equal(pred.mean, again.mean)
    with torch.no_grad():
        direct = trained.y_transform.inverse_transform(
            trained.members[0](torch.as_tensor(trained.x_scaler.transform(data.x), dtype=torch.float32)).numpy().astype(float))
    np.testing.assert_allclose(pred.mean, direct, rtol=1e-6, atol=1e-7)
    assert saved["seed"] == 1


def test_same_seed_same_model_different_seed_different_model(tmp_path):
    data = synthetic()
    a = train_model(data, quick_config(seed=5), tmp_path / "a", progress=False)
    b = train_model(data, quick_config(seed=5), tmp_path / "b", progress=False)
    c = train_model(data, quick_config(seed=6), tmp_path / "c", progress=False)
    pa, pb, pc = (Predictor.from_bundle(tmp_path / k).predict_features(data.x).mean for k in "abc")
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)
    assert a["training_data_sha256"] == b["training_data_sha256"]


def test_missing_seed_is_drawn_and_saved(tmp_path):
    saved = train_model(synthetic(), quick_config(seed=None), tmp_path / "m", progress=False)
    assert isinstance(saved["seed"], int)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["seed"] == saved["seed"]


def test_model_learns_better_than_the_mean(tmp_path):
    data = synthetic(n=300)
    saved = train_model(data, quick_config(epochs=200, patience=30), tmp_path / "m", holdout=0.2, progress=False)
    test = np.isin(data.ids, saved["holdout"]["ids"])
    baseline = np.mean((data.y[test] - data.y[~test].mean(0)) ** 2)
    assert saved["holdout_metrics"]["mse"] < baseline / 3


def test_ensemble_members_differ_and_std_is_positive(tmp_path):
    data = synthetic()
    train_model(data, quick_config(ensemble=3), tmp_path / "m", progress=False)
    pred = Predictor.from_bundle(tmp_path / "m").predict_features(data.x)
    assert pred.samples.shape[0] == 3 and np.all(pred.std > 0)
    np.testing.assert_allclose(pred.mean, pred.samples.mean(0))


def test_config_file_rejects_unknown_keys(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"training": {"epochs": 3, "learning_rate": 0.1}}))
    with pytest.raises(XanesnetError, match=r"cfg\.json: unknown training setting\(s\) 'learning_rate'; valid: epochs, batch_size"):
        load_config(p)
    p.write_text(json.dumps({"trainng": {}}))
    with pytest.raises(XanesnetError, match=r"unknown config setting\(s\) 'trainng'"):
        load_config(p)


@pytest.mark.parametrize("transform", [Standardizer(), Identity(), PCA(5)])
def test_target_transforms_invert(transform):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 5)) @ rng.normal(size=(5, 20)) + 3
    z = transform.fit(y).transform(y)
    np.testing.assert_allclose(transform.inverse_transform(z), y, atol=1e-9)
    again = type(transform).from_state(json.loads(json.dumps(transform.state())))
    np.testing.assert_allclose(again.transform(y), z)


@pytest.fixture
def saved_model(tmp_path):
    train_model(synthetic(), quick_config(), tmp_path / "m", progress=False)
    return tmp_path / "m"


def test_corrupted_weights_are_refused(saved_model):
    with open(saved_model / "weights.pt", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(XanesnetError, match=r"/m: corrupted model: weights\.pt does not match the checksum in config\.json$"):
        load_bundle(saved_model)


def test_mismatched_descriptor_is_refused(saved_model):
    cfg = json.loads((saved_model / "config.json").read_text())
    cfg["descriptor"]["r_max"] = 5.5
    (saved_model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(XanesnetError, match=r"/m: corrupted or edited model: config\.json does not match its model checksum"):
        load_bundle(saved_model)
    from xanesnet.bundle import stamp

    (saved_model / "config.json").write_text(json.dumps(stamp(cfg)))  # edited on purpose, or a model from before the checksum
    with pytest.raises(XanesnetError, match=r"mismatched model: its descriptor settings no longer give the features it was trained on"):
        load_bundle(saved_model)


def test_broken_config_is_refused(saved_model):
    (saved_model / "config.json").write_text("{not json")
    with pytest.raises(XanesnetError, match=r"corrupted model: config\.json is not valid JSON"):
        load_bundle(saved_model)


def test_missing_weights_is_refused(saved_model):
    (saved_model / "weights.pt").unlink()
    with pytest.raises(XanesnetError, match=r"not a model directory: weights\.pt is missing"):
        load_bundle(saved_model)


def test_failed_save_leaves_the_old_model_untouched(saved_model, monkeypatch):
    before = (saved_model / "config.json").read_text()
    import xanesnet.bundle as bundle

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bundle, "_sha256", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        train_model(synthetic(), quick_config(seed=9), saved_model, progress=False)
    assert (saved_model / "config.json").read_text() == before
    assert sorted(p.name for p in saved_model.parent.iterdir()) == ["m"]


@pytest.mark.parametrize("n,expected", [
    (90, {"val_fraction": 10 / 90, "batch_size": 64, "patience": 50, "threads": 1}),  # the 99-molecule sample less held-out
    (40, {"val_fraction": 0.25, "batch_size": 32, "patience": 50, "threads": 1}),
    (300, {"val_fraction": 0.1, "batch_size": 64, "patience": 50, "threads": 1}),
    (3667, {"val_fraction": 0.1, "batch_size": 64, "patience": 50, "threads": None}),  # the Fe set: the former defaults
])
def test_training_settings_scale_with_the_data_size(n, expected):
    resolved = TrainingSettings().for_size(n)
    assert {k: getattr(resolved, k) for k in expected} == pytest.approx(expected)
    assert round(resolved.val_fraction * n) >= 10  # enough spectra to early-stop and calibrate on, so no warning
    given = TrainingSettings(batch_size=8, patience=7, val_fraction=0.2, threads=2).for_size(n)
    assert (given.batch_size, given.patience, given.val_fraction, given.threads) == (8, 7, 0.2, 2)  # what is set stays


def test_small_data_rules_are_the_ones_chosen_on_validation():
    """for_size uses the batch-size divisor and patience floor that scripts/small_data_rules.py chose (its JSON)."""
    from conftest import ROOT

    from xanesnet import config

    chosen = json.loads((ROOT / "docs" / "small_data_rules.json").read_text())["chosen"]
    assert (config.SMALL_DATA_BATCH_DIVISOR, config.SMALL_DATA_PATIENCE_FLOOR) == (chosen["batch_divisor"], chosen["patience_floor"])


def test_saved_model_records_the_settings_it_was_trained_with(tmp_path):
    data = synthetic(n=60)
    cfg = quick_config()
    cfg.training = TrainingSettings(epochs=5, ensemble=1)
    threads = torch.get_num_threads()
    saved = train_model(data, cfg, tmp_path / "m", progress=False)
    assert torch.get_num_threads() == threads  # restored after training
    recorded = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert {k: recorded[k] for k in ("batch_size", "patience", "val_fraction", "threads")} == {
        "batch_size": 32, "patience": 50, "val_fraction": 10 / 60, "threads": 1}  # 60 less 10 validation -> 32
    assert saved["training"] == recorded
