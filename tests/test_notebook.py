"""The feature-importance notebook runs top to bottom (on a small subset) from the repository root.

nbclient starts the ``python3`` kernel; jupyter_client provides that kernel
spec whenever ipykernel is importable, so nothing is installed or registered.
"""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, SHARED_DATA

NOTEBOOK = ROOT / "notebooks" / "feature_importance.ipynb"
SHIPPED_MODEL = ROOT / "models" / "fe-k-xanes"


@pytest.fixture
def model_dir(tmp_path):
    """The shipped Fe model; a tiny stand-in trained on the shared sample when it is not there (yet)."""
    if (SHIPPED_MODEL / "config.json").is_file():
        return SHIPPED_MODEL
    from conftest import shared_data

    from xanesnet.cli import main

    sample = shared_data("fe_k_fdmnes_sample")
    (tmp_path / "config.json").write_text(json.dumps({
        "descriptor": "default", "model": {"kind": "mlp", "hidden": [32], "activation": "silu", "dropout": 0.0},
        "training": {"epochs": 5, "patience": 5, "batch_size": 16}}))
    out = tmp_path / "model"
    assert main(["train", "--xyz", str(sample / "xyz"), "--spectra", str(sample / "xanes"), "--out", str(out),
                 "--config", str(tmp_path / "config.json"), "--seed", "0", "--holdout", "0.3", "--no-cache",
                 "--no-progress"]) == 0
    return out


def run_notebook(tmp_path, monkeypatch, model, **env):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for key, value in {"XANESNET_NOTEBOOK_N": "40", "XANESNET_NOTEBOOK_REPEATS": "2",
                       "XANESNET_NOTEBOOK_MODEL": str(model), "XANESNET_NOTEBOOK_OUT": str(tmp_path / "out"),
                       "XANESNET_SHARED_DATA": str(SHARED_DATA), **env}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(ROOT)}}).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebook_on_the_fe_data(tmp_path, monkeypatch, model_dir):
    from conftest import shared_data

    shared_data("fe_k_fdmnes_train.tar.gz")
    text = run_notebook(tmp_path, monkeypatch, model_dir)
    assert "spectra as reference" in text and "\nedge: 7097-" in text and "\npost-edge: " in text
    assert (tmp_path / "out" / "importance.png").is_file() and (tmp_path / "out" / "importance.svg").is_file()


def test_notebook_falls_back_to_the_examples(tmp_path, monkeypatch, model_dir):
    text = run_notebook(tmp_path, monkeypatch, model_dir, XANESNET_SHARED_DATA=str(tmp_path / "nothing-here"))
    from xanesnet.io.structures import read_structure

    n_fe = sum("Fe" in read_structure(p).symbols for p in (ROOT / "data" / "examples").glob("*.xyz"))
    assert f"using the {n_fe} Fe example molecules" in text
    assert f"\n{n_fe} molecules, 2 repeats, seed 0, model mean as reference" in text
    assert (tmp_path / "out" / "importance.png").is_file()
