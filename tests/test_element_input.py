"""The absorbing element as a model input (the universal Ti-Zn model): one-hot after a descriptor that ignores it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import check_invariances
from test_training import SMALL

from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import AbsorberElement, descriptor_from_dict
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import FIRST_ROW_TM, Structure
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.predict import Predictor


def tetrahedral(z_metal: int, r: float, name: str = "m") -> Structure:
    d = r / np.sqrt(3)
    pos = np.array([[0, 0, 0], [d, d, d], [-d, -d, d], [-d, d, -d], [d, -d, -d]], float)
    return Structure(name=name, numbers=np.array([z_metal, 17, 17, 17, 17]), positions=pos)


def test_one_hot_follows_the_wrapped_descriptor():
    d = AbsorberElement(inner=SMALL.to_dict())
    inner = descriptor_from_dict(SMALL.to_dict())
    for k, el in enumerate(FIRST_ROW_TM):
        s = tetrahedral(22 + k, 2.2)
        assert s.symbols[0] == el
        v = d.create(s, 0)
        np.testing.assert_array_equal(v[: inner.n_features], inner.create(s, 0))
        np.testing.assert_array_equal(v[inner.n_features:], np.eye(len(FIRST_ROW_TM))[k])
    assert d.feature_names[-9:] == [f"absorber={el}" for el in FIRST_ROW_TM]
    assert len(d.feature_names) == inner.n_features + 9
    check_invariances(d, tetrahedral(26, 2.1), 0)


def test_same_geometry_different_absorber_differs_only_in_the_one_hot():
    d = AbsorberElement(inner=SMALL.to_dict())
    fe, cu = d.create(tetrahedral(26, 2.2), 0), d.create(tetrahedral(29, 2.2), 0)
    n = SMALL.n_features
    np.testing.assert_array_equal(fe[:n], cu[:n])
    assert not np.array_equal(fe[n:], cu[n:])


def test_batch_is_the_inner_batch_plus_one_hot_and_flags_unknown_elements():
    """create_batch vectorises through the inner descriptor's batch: each row equals the one-molecule vector, and an
    absorber outside ``elements`` gets NaN and its error without disturbing the others."""
    d = AbsorberElement(inner=SMALL.to_dict(), elements=("Fe", "Co", "Cu"))
    structures = [tetrahedral(z, r, name=f"{z}-{r}") for z, r in ((26, 2.0), (28, 2.1), (27, 2.2), (29, 2.3))]
    x, errors = d.create_batch(structures, [0] * len(structures))
    assert [e is not None for e in errors] == [False, True, False, False]
    assert "absorber Ni (atom 0) is not one of the elements this descriptor knows: Fe, Co, Cu" in str(errors[1])
    assert np.isnan(x[1]).all()
    for k in (0, 2, 3):
        np.testing.assert_array_equal(x[k], d.create(structures[k], 0))
        np.testing.assert_array_equal(x[k, SMALL.n_features:], np.eye(3)[[0, 1, 2][k - (k > 1)]])


def test_unknown_absorber_element_is_refused():
    d = AbsorberElement(inner=SMALL.to_dict(), elements=("Fe", "Co"))
    with pytest.raises(XanesnetError, match="absorber Ni .* not one of the elements this descriptor knows: Fe, Co"):
        d.create(tetrahedral(28, 2.2), 0)
    with pytest.raises(XanesnetError, match="distinct"):
        AbsorberElement(elements=("Fe", "Fe"))
    with pytest.raises(XanesnetError, match="cannot itself be absorber_element"):
        AbsorberElement(inner=AbsorberElement().to_dict())


def test_one_network_learns_what_the_element_changes(tmp_path):
    """Two elements, same geometries, spectra shifted by the element: the saved model predicts each element's shift."""
    d = AbsorberElement(inner=SMALL.to_dict(), elements=("Fe", "Cu"))
    rng = np.random.default_rng(0)
    energy = np.linspace(0.0, 20.0, 41)
    structures, ys = [], []
    for i, r in enumerate(rng.uniform(1.9, 2.5, size=60)):
        for z, centre in ((26, 7.0), (29, 13.0)):
            structures.append(tetrahedral(z, r, name=f"{z}-{i}"))
            ys.append(np.exp(-((energy - centre - 2 * (r - 2.2)) / 1.5) ** 2))
    x = d.featurize(structures, absorber=0)
    data = TrainingSet(ids=[s.name for s in structures], x=x, y=np.array(ys), energy=energy)
    cfg = Config(descriptor=d.to_dict(), model={"kind": "mlp", "hidden": [32, 32], "activation": "silu", "dropout": 0.0},
                 training=TrainingSettings(epochs=300, patience=30, batch_size=16, ensemble=1, lr=3e-3), seed=0)
    train_model(data, cfg, tmp_path / "m", progress=False)
    predictor = Predictor.from_bundle(tmp_path / "m")
    assert predictor.descriptor == d
    pred = predictor.predict([tetrahedral(26, 2.2), tetrahedral(29, 2.2)], absorber=0)
    peaks = energy[np.argmax(pred.mean, axis=1)]
    assert peaks[0] == pytest.approx(7.0, abs=1.0) and peaks[1] == pytest.approx(13.0, abs=1.0)
