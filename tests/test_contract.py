"""The model contract and typed settings, checked for every registered component.

Each registered model kind is trained on tiny data with each registered
descriptor that gives the inputs it takes: train -> save -> load -> identical
predictions with error bars; each selection strategy ranks its predictions.
A misspelt key in any config section is one line naming it, before any file
is read. The shipped models predict what they did before the settings were typed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xanesnet.cli import MODELS_DIR, main
from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import DESCRIPTORS, default_descriptor
from xanesnet.io.structures import Structure
from xanesnet.models import MODELS, model_class
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor
from xanesnet.uncertainty import SELECTION_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]


def tiny_molecules(n: int = 48, seed: int = 0) -> tuple[list[Structure], np.ndarray, np.ndarray]:
    """Octahedral Fe complexes with random ligands and bond lengths; the peak tracks the mean Fe-ligand distance."""
    rng = np.random.default_rng(seed)
    axes = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    energy = np.linspace(7110, 7150, 30)
    structures, y = [], []
    for i in range(n):
        r = rng.uniform(1.8, 2.3, size=6)
        ligands = rng.choice([6, 7, 8], size=6)
        pos = np.vstack([[0, 0, 0], axes * r[:, None], axes * (r + 1.1)[:, None]])
        numbers = np.concatenate([[26], ligands, np.ones(6, int)])
        structures.append(Structure(name=f"m{i}", numbers=numbers, positions=pos + rng.normal(scale=0.02, size=pos.shape)))
        centre = 7130 + 20 * (r.mean() - 2.05) + 0.5 * (ligands == 8).sum()
        y.append(np.exp(-((energy - centre) / 4) ** 2))
    return structures, np.array(y), energy


def compatible(kind: str) -> list[str]:
    input_kind = model_class(kind).Settings.input_kind
    return [d for d, cls in sorted(DESCRIPTORS.items()) if cls.input_kind == input_kind]


CASES = [(m, d) for m in sorted(MODELS) for d in compatible(m)]


@pytest.mark.parametrize(("kind", "descriptor"), CASES)
def test_every_model_and_descriptor_round_trips_with_error_bars(tmp_path, kind, descriptor):
    structures, y, energy = tiny_molecules()
    desc = DESCRIPTORS[descriptor]()
    x = desc.featurize(structures, absorber=0)
    config = Config(descriptor=desc, model={"kind": kind},
                    training=TrainingSettings(epochs=4, patience=4, batch_size=16, ensemble=2), seed=3)
    saved = train_model(TrainingSet(ids=[s.name for s in structures], x=x, y=y, energy=energy), config, tmp_path / "m",
                        progress=False)
    assert saved["model"]["kind"] == kind and Config.from_dict({k: saved[k] for k in ("descriptor", "model", "training")})
    a = Predictor.from_bundle(tmp_path / "m").predict_features(x)
    b = Predictor.from_bundle(tmp_path / "m").predict_features(x)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    assert a.mean.shape == y.shape and np.all(np.isfinite(a.mean))
    assert np.all(a.std > 0) and a.score is not None and a.trusted is not None
    for name, select in SELECTION_STRATEGIES.items():
        picked = select(a.score, a.extrapolation, a.features, 5, seed=0)
        assert len(picked) == len(set(picked.tolist())) == 5, name


def test_every_model_kind_rebuilds_from_its_saved_settings_and_state():
    import torch

    structures, y, _ = tiny_molecules(n=12)
    for kind in MODELS:
        cls = model_class(kind)
        descriptor = default_descriptor(cls.Settings.input_kind)
        x = torch.as_tensor(descriptor.featurize(structures, absorber=0), dtype=torch.float32)
        y = torch.as_tensor(y, dtype=torch.float32)
        net = cls(cls.Settings(), n_in=x.shape[1], n_out=y.shape[1])
        settings = Config.from_dict({"model": net.get_params()}).model
        assert settings == net.settings
        net.fit(x[:9], y[:9], x[9:], y[9:], TrainingSettings(epochs=2).for_size(9), seed=0)
        copy = cls.from_state(settings, net.state(), n_in=x.shape[1], n_out=y.shape[1])
        torch.testing.assert_close(copy.predict(x), net.predict(x), rtol=0, atol=0)


@pytest.mark.parametrize(("section", "bad", "message"), [
    ("training", {"training": {"learning_rate": 0.1}}, r"unknown training setting\(s\) 'learning_rate'; valid: epochs, "),
    ("model", {"model": {"hiden": [64]}}, r"unknown mlp model setting\(s\) 'hiden'; valid: kind, hidden, activation, dropout"),
    ("model kind", {"model": {"kind": "mpl"}}, r"unknown model kind 'mpl'; known: mlp, "),
    ("descriptor", {"descriptor": {"kind": "wacsf", "rmax": 5}}, r"unknown wacsf descriptor setting\(s\) 'rmax'; valid: kind, r_min"),
    ("spectra", {"spectra": {"grids": "absolute:1:2:3"}}, r"unknown spectra setting\(s\) 'grids'; valid: broadening, "),
    ("spectra.edge", {"spectra": {"edge": {"smoth": 2}}}, r"unknown edge setting\(s\) 'smoth'; valid: smooth, step, window"),
    ("uncertainty", {"uncertainty": {"mc_sample": 5}}, r"unknown uncertainty setting\(s\) 'mc_sample'; valid: mc_samples, "),
    ("provenance", {"provenance": {"elemnt": "Fe"}}, r"unknown provenance setting\(s\) 'elemnt'; valid: element, edge"),
    ("top level", {"trainig": {}}, r"unknown config setting\(s\) 'trainig'; valid: descriptor, model, training, "),
])
def test_misspelt_key_is_one_line_and_exit_2_before_any_file_is_read(tmp_path, capsys, section, bad, message):
    import re

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(bad))
    code = main(["train", "--xyz", str(tmp_path / "absent"), "--spectra", str(tmp_path / "absent"), "--config", str(cfg),
                 "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(f"^xanesnet train: error: {re.escape(str(cfg))}: {message}", err), err
    assert not (tmp_path / "m").exists()


def test_config_json_round_trip(tmp_path):
    config = Config.from_dict({"model": {"kind": "mlp", "hidden": [64], "dropout": 0.2}, "training": {"epochs": 7},
                               "spectra": {"grid": "absolute:7100:7150:51"}, "provenance": {"element": "Fe"}, "seed": 4})
    path = config.save(tmp_path / "c.json")
    from xanesnet.config import load_config

    again = load_config(path)
    assert again == config and again.to_dict() == json.loads(path.read_text())
    assert again.model.hidden == (64,) and again.training.epochs == 7 and again.training.ensemble == 5


def test_defaults_are_defined_once():
    """The MLP built without settings and the config's default model are the same thing."""
    from xanesnet.models.mlp import MLPSettings

    assert Config().model == MLPSettings() and MLPSettings().dropout == 0.1


SHIPPED = json.loads((ROOT / "tests" / "data" / "shipped_predictions.json").read_text())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_models_predict_as_before(name):
    """Predictions recorded with the code that trained or last re-recorded each model; a retrained model (new checksum) is skipped until its reference is re-recorded."""
    ref = SHIPPED[name]
    config = json.loads((MODELS_DIR / name / "config.json").read_text())
    if config["weights_sha256"] != ref["weights_sha256"]:
        pytest.skip(f"{name} has been retrained since the reference predictions were recorded")
    pred, _ = Predictor.from_bundle(MODELS_DIR / name).predict_files([ROOT / "data" / "examples" / ref["structure"]])
    np.testing.assert_allclose(pred.mean[0], ref["mean"], rtol=1e-5, atol=1e-6 * np.abs(ref["mean"]).max())
    np.testing.assert_allclose(pred.std[0], ref["std"], rtol=1e-5, atol=1e-6 * np.abs(ref["std"]).max())
    assert bool(pred.trusted[0]) == ref["trusted"]
