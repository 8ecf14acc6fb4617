"""Installable anywhere: a wheel built from the repository carries the shipped models and predicts from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT


@pytest.mark.slow
def test_wheel_predicts_from_another_directory(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "xanesnet", src / "xanesnet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "models", src / "models")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XANESNET_MODELS")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    wheel, = (tmp_path / "dist").glob("xanesnet-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, env=env,
                   capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLES / "ferrocene.xyz", work / "ferrocene.xyz")
    env["PYTHONPATH"] = str(site)
    code = ("import sys, xanesnet.resources as r; from xanesnet.cli import main; print(r.models_dir()); "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "predict", "ferrocene.xyz", "--out", "out", "--json", "p.json"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(site / "xanesnet" / "_models")  # the wheel's own copy, not the checkout's
    record = json.loads((work / "p.json").read_text())["ferrocene"]
    assert record["model"] == "fe-k-xanes" and (work / "out" / "ferrocene.xanes.txt").is_file()
    # the same prediction as from the checkout
    from xanesnet.predict import Predictor

    pred, _ = Predictor.from_bundle(ROOT / "models" / "fe-k-xanes").predict_files([EXAMPLES / "ferrocene.xyz"])
    np.testing.assert_allclose(record["intensity"], pred.mean[0], rtol=1e-6, atol=1e-9)
