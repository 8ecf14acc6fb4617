"""Physically valid outputs: positive intensities by construction, no main peak at a grid end, XES scaled to its shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_training import SMALL, synthetic

from xanesnet.analysis.metrics import evaluate_spectra, main_peak, zscored_skill
from xanesnet.config import Config, TrainingSettings
from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor
from xanesnet.spectra import process
from xanesnet.transforms import Softplus, target_transform


def emission_like(n=120, seed=0):
    """Peaks on a zero baseline: most of the grid is ~0, where an unconstrained network dips below zero."""
    data = synthetic(n, seed)
    return TrainingSet(ids=data.ids, x=data.x, y=data.y ** 4, energy=data.energy)


def test_softplus_inverts_positive_spectra_and_saves():
    y = emission_like().y
    tf = target_transform("softplus:0.02").fit(y)
    big = y > 0.05 * y.max()
    np.testing.assert_allclose(tf.inverse_transform(tf.transform(y))[big], y[big], rtol=1e-9)
    tiny = ~big
    assert np.all(np.abs(tf.inverse_transform(tf.transform(y))[tiny] - y[tiny]) <= 1e-3 * tf.w_ + 1e-12)
    again = Softplus.from_state(json.loads(json.dumps(tf.state())))
    np.testing.assert_array_equal(again.transform(y), tf.transform(y))


def test_softplus_output_is_positive_for_any_network_output():
    tf = Softplus().fit(emission_like().y)
    z = np.random.default_rng(0).normal(scale=1e3, size=(200, 40))
    z[0] = -1e300
    out = tf.inverse_transform(z)
    assert np.all(np.isfinite(out[1:])) and np.all(out >= 0)


@pytest.mark.parametrize("bad", ["softplus:0", "softplus:2", "softplus:x"])
def test_softplus_width_checked(bad):
    with pytest.raises(XanesnetError, match="softplus"):
        target_transform(bad)


def test_trained_softplus_model_never_predicts_negative_intensity(tmp_path):
    data = emission_like()
    cfg = Config(descriptor=SMALL.to_dict(), model={"kind": "mlp", "hidden": [32, 32], "activation": "silu", "dropout": 0.2},
                 training=TrainingSettings(epochs=40, patience=10, batch_size=16, ensemble=2, target_transform="softplus"),
                 seed=3)
    train_model(data, cfg, tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    x = np.vstack([data.x, np.random.default_rng(1).normal(scale=5.0, size=(50, data.x.shape[1]))])  # far outside too
    for pred in (predictor.predict_features(x), predictor.predict_features(x, mc_samples=10)):
        assert np.all(pred.samples >= 0) and np.all(pred.mean >= 0)
        assert np.all(pred.std > 0) and pred.score is not None  # still calibrated
    # the same network without the positive output does go negative on this data (the test can fail)
    cfg.training = TrainingSettings(epochs=40, patience=10, batch_size=16, ensemble=2)
    train_model(data, cfg, tmp_path / "plain", progress=False)
    assert Predictor.from_bundle(tmp_path / "plain").predict_features(x).mean.min() < 0


def test_zscored_skill_against_the_other_molecules_mean():
    """1 for a perfect prediction, 0 for predicting the other references' mean, blind to each spectrum's offset and
    scale (so to any normalisation), and refused for a flat spectrum."""
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(6, 40)).cumsum(1)
    np.testing.assert_allclose(zscored_skill(ref, ref), 1.0)
    others = np.vstack([np.delete(ref, i, axis=0).mean(0) for i in range(len(ref))])
    np.testing.assert_allclose(zscored_skill(ref, 2.0 * others + 1.0), 0.0, atol=1e-12)
    noisy = ref + rng.normal(scale=0.5, size=ref.shape)
    affine = 3.0 * noisy + rng.normal(size=(6, 1))
    np.testing.assert_allclose(zscored_skill(ref, affine), zscored_skill(ref, noisy))
    assert np.all(zscored_skill(ref, noisy) < 1)
    with pytest.raises(ValueError, match="flat spectrum"):
        zscored_skill(ref, np.vstack([noisy[:-1], np.ones(40)]))


def test_main_peak_is_never_at_a_grid_end():
    energy = np.linspace(0.0, 10.0, 101)
    rising = energy**2  # highest at the top end: no peak inside the grid
    bump_then_rise = np.exp(-((energy - 3) / 0.5) ** 2) + np.where(energy > 8, (energy - 8) * 3, 0.0)
    e, i = main_peak(energy, np.vstack([rising, bump_then_rise, bump_then_rise[::-1]]))
    assert np.isnan(e[0]) and np.isnan(i[0])
    assert e[1] == pytest.approx(3.0, abs=0.05) and i[1] == pytest.approx(1.0, abs=0.01)
    assert e[2] == pytest.approx(7.0, abs=0.05)
    m = evaluate_spectra(energy, np.vstack([rising, bump_then_rise]), np.vstack([rising, bump_then_rise]))
    assert m["n_peaks"] == 1 and m["peak_position_error_ev_mean"] == 0.0


def test_mean_intensity_scales_the_spectrum_on_its_grid():
    energy = np.linspace(100.0, 160.0, 300)
    spectrum = Spectrum(name="s", energy=energy, intensity=3.7 * np.exp(-((energy - 130) / 5) ** 2) + 0.1)
    settings = {"grid": "absolute:110:150:161", "mean_intensity": 1.0}
    out = process(spectrum, settings)
    assert np.mean(out.intensity) == pytest.approx(1.0)
    plain = process(spectrum, {"grid": "absolute:110:150:161"})
    np.testing.assert_allclose(out.intensity, plain.intensity * out.meta["scale"])
    with pytest.raises(XanesnetError, match="mean_intensity needs a grid"):
        process(spectrum, {"mean_intensity": 1.0})
    with pytest.raises(XanesnetError, match="mean_intensity must be positive"):
        process(spectrum, {"grid": "absolute:110:150:161", "mean_intensity": 0})
