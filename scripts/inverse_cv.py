"""Settings of the inverse model by 5-fold CV of single networks on the training part (never the held-out 10%).

For each setting (layer width, dropout, training noise) and seed, one network
per fold is trained with ``xanesnet.inverse.train_inverse`` on the Fe FDMNES
molecules outside the held-out split and scored on that fold's spectra, each
shifted by a random +-2 eV (as in docs/inverse.md): the exact-CN rate and the
first-shell distance MAE. Spectra whose edge leaves the input window are
refused by the model, as in ``xanesnet invert``, and counted. Writes
docs/inverse_cv.json, stamped with the commit.

    python scripts/inverse_cv.py [--seeds 0 1] [--settings shipped wide_512]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from inverse_report import inverse_config, perturbed

from xanesnet.data.dataset import heldout_mask
from xanesnet.errors import XanesnetError
from xanesnet.experiments import ROOT, cv_folds, fe_data_dir, git_commit
from xanesnet.inverse import INVERSE_MODEL_SETTINGS, InverseData, InverseInput, InversePredictor, build_inverse_set, train_inverse
from xanesnet.io.spectra import Spectrum, read_spectrum

FOLDS = 5
#: name -> (network settings, input settings)
SETTINGS: dict[str, tuple[dict, dict]] = {
    "shipped": ({}, {}),
    "wide_512": ({"hidden": [512, 512]}, {}),
    "wide_512_dropout_0.3": ({"hidden": [512, 512], "dropout": 0.3}, {}),
    "wide_1024_dropout_0.3": ({"hidden": [1024, 1024], "dropout": 0.3}, {}),
    "noise_0.005": ({}, {"noise": 0.005}),
    "noise_0": ({}, {"noise": 0.0}),
}


def cross_validate(data: InverseData, inputs: InverseInput, spectra: dict, pool: np.ndarray, folds: np.ndarray,
                   model: dict, seed: int) -> dict:
    hits, errors, refused = [], [], 0
    for k in range(FOLDS):
        fit, test = pool[folds != k], pool[folds == k]
        subset = InverseData(ids=[data.ids[i] for i in fit], x=data.x[fit], e0=data.e0[fit], targets=data.targets.take(fit))
        config = inverse_config(1, seed)
        config.model = type(config.model).from_dict({**config.model.to_dict(), **model})
        with tempfile.TemporaryDirectory() as tmp:
            train_inverse(subset, inputs, Path(tmp) / "m", config=config, progress=False)
            predictor = InversePredictor.from_bundle(Path(tmp) / "m")
        shifted = perturbed([spectra[data.ids[i]] for i in test], 2.0, 0.0, seed=1)
        for i, spectrum in zip(test, shifted):
            try:
                shells = predictor.predict([spectrum])
            except XanesnetError:
                refused += 1
                continue
            hits.append(bool(shells.cn[0] == data.targets.cn[i]))
            if np.isfinite(data.targets.r1[i]):
                errors.append(abs(float(shells.r1[0]) - float(data.targets.r1[i])))
    return {"seed": seed, "cn_exact": float(np.mean(hits)), "r1_mae": float(np.mean(errors)), "n": len(hits),
            "refused": refused}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--data", help="the Fe data archive (default ../shared/data/fe_k_fdmnes_train.tar.gz)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "inverse_cv.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    data_dir = fe_data_dir(args.data)
    rows = []
    built: dict[str, tuple] = {}
    spectra: dict[str, Spectrum] = {}  # read once for every setting
    for name in args.settings:
        model, input_settings = SETTINGS[name]
        key = json.dumps(input_settings, sort_keys=True)
        if key not in built:
            inputs = InverseInput(**input_settings)
            data = build_inverse_set(data_dir / "xyz", data_dir / "xanes_conv", inputs)
            pool = np.flatnonzero(~heldout_mask(data.ids))
            built[key] = (inputs, data, pool, cv_folds([data.ids[i] for i in pool], FOLDS))
        inputs, data, pool, folds = built[key]
        for i in pool:
            if data.ids[i] not in spectra:
                spectra[data.ids[i]] = read_spectrum(data_dir / "xanes_conv" / f"{data.ids[i]}.txt")
        for seed in args.seeds:
            start = time.perf_counter()
            row = {"setting": name, "model": {**INVERSE_MODEL_SETTINGS, **model}, "input": input_settings,
                   **cross_validate(data, inputs, spectra, pool, folds, model, seed)}
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            print(f"{name} seed {seed}: CN exact {row['cn_exact']:.3f}, r1 MAE {row['r1_mae']:.4f} A "
                  f"({row['n']} scored, {row['refused']} refused, {row['seconds']:.0f} s)", flush=True)
    args.out.write_text(json.dumps({"commit": git_commit(), "folds": FOLDS, "shift_ev": 2.0, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
