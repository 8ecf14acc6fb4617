"""float16 weight storage: half the bytes, predictions within 1e-3 of the spectrum RMS, for every shipped model stored so."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ROOT, float16_jittered

from xanesnet.bundle import load_bundle
from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import WACSF
from xanesnet.io.structures import find_structure_files, read_structure, resolve_absorber
from xanesnet.pipeline import FLOAT16_TOLERANCE, TrainingSet, train_model
from xanesnet.predict import Predictor

SMALL = WACSF(n_g2=8, n_g4=8, zetas=(1.0, 2.0), r_max=5.0)
SHIPPED_FLOAT16 = [p for p in sorted((ROOT / "models").iterdir())
                   if (p / "config.json").is_file() and json.loads((p / "config.json").read_text()).get("weights_dtype") == "float16"
                   and json.loads((p / "config.json").read_text()).get("kind") != "inverse"]  # test_inverse checks that one


def synthetic(n=80):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, SMALL.n_features))
    energy = np.linspace(7100, 7160, 40)
    y = np.exp(-((energy - 7130 - 5 * np.tanh(x[:, [1]])) / 4) ** 2) * (1 + 0.3 * np.tanh(x[:, [2]]))
    return TrainingSet(ids=[f"m{i}" for i in range(n)], x=x, y=y, energy=energy)


def config():
    return Config(descriptor=SMALL.to_dict(), model={"kind": "mlp", "hidden": [64, 64], "activation": "silu", "dropout": 0.1},
                  training=TrainingSettings(epochs=20, patience=10, batch_size=16, ensemble=2), seed=4)


def max_change_over_rms(a, b) -> float:
    """The largest change of predicted mean or std between predictions ``a`` and ``b``, relative to ``a``'s RMS."""
    rms = np.sqrt(np.mean(a.mean**2, -1))
    return float(max(np.max(np.abs(a.mean - b.mean).max(-1) / rms), np.max(np.abs(a.std - b.std).max(-1) / rms)))


def test_float16_storage_halves_the_file_and_keeps_the_predictions(tmp_path):
    data = synthetic()
    train_model(data, config(), tmp_path / "full", progress=False)
    saved = train_model(data, config(), tmp_path / "half", weights_dtype="float16", progress=False)
    assert saved["weights_dtype"] == "float16" and saved["float16_check"]["max_change_over_rms"] < FLOAT16_TOLERANCE
    stored = torch.load(tmp_path / "half" / "weights.pt", weights_only=True)["members"]
    assert all(t.dtype == torch.float16 for sd in stored for t in sd.values())
    assert (tmp_path / "half" / "weights.pt").stat().st_size < 0.6 * (tmp_path / "full" / "weights.pt").stat().st_size
    full, half = (Predictor.from_bundle(tmp_path / k).predict_features(data.x, calibrate=False) for k in ("full", "half"))
    assert max_change_over_rms(full, half) < FLOAT16_TOLERANCE
    assert all(p.dtype == torch.float32 for m in load_bundle(tmp_path / "half").members for p in m.parameters())


def test_float16_is_refused_where_it_would_move_predictions(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("xanesnet.pipeline.FLOAT16_TOLERANCE", 1e-12)
    with caplog.at_level(logging.WARNING):
        saved = train_model(synthetic(), config(), tmp_path / "m", weights_dtype="float16", progress=False)
    assert saved["weights_dtype"] == "float32" and "kept float32" in caplog.text
    assert all(t.dtype == torch.float32 for sd in torch.load(tmp_path / "m" / "weights.pt", weights_only=True)["members"]
               for t in sd.values())


def test_some_shipped_model_is_stored_as_float16():
    assert SHIPPED_FLOAT16, "no shipped model stores float16 weights"


@pytest.mark.parametrize("model", SHIPPED_FLOAT16, ids=[p.name for p in SHIPPED_FLOAT16])
def test_shipped_float16_model_is_insensitive_to_its_rounding(model):
    """The float32 originals lie within half a float16 step of the stored weights; moving every weight by a random
    amount of that size moves no prediction (mean spectrum or std) of the example molecules by 1e-3 of the spectrum
    RMS."""
    bundle = load_bundle(model)
    assert bundle.config["float16_check"]["max_change_over_rms"] < FLOAT16_TOLERANCE  # measured when converted
    element = bundle.config.get("element")
    structures = [read_structure(p) for p in find_structure_files([EXAMPLES])]
    probes = [(s, resolve_absorber(s, element)) for s in structures if element in s.symbols] or \
             [(s, resolve_absorber(s, None)) for s in structures]
    x = np.vstack([bundle.descriptor.create(s, a) for s, a in probes])
    ref = Predictor(bundle).predict_features(x, calibrate=False)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        nets = float16_jittered(bundle.members, gen)
        from xanesnet.bundle import Bundle

        moved = Predictor(Bundle(path=None, config=bundle.config, members=nets)).predict_features(x, calibrate=False)
        assert max_change_over_rms(ref, moved) < FLOAT16_TOLERANCE
