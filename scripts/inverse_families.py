"""Is the inverse model's CN accuracy the network's limit or the data's? Three model families on the same CV folds.

On the Fe FDMNES molecules outside the held-out split (never the held-out 10%),
with the folds and the +-2 eV test shifts of ``scripts/inverse_cv.py``, each
family is trained on a fold's training part and predicts CN class
probabilities for that fold's shifted spectra, all from the same input (the
edge-placed window of ``xanesnet.inverse.InverseInput``):

- ``network``: the shipped inverse network, one member per fold (as in
  ``inverse_cv.py``);
- ``boosted_trees``: scikit-learn's histogram gradient boosting on the
  standardised window;
- ``nearest_neighbours``: the 5 nearest training spectra (standardised window,
  weighted by inverse distance) vote.

Blends average the families' probabilities with equal weights (fixed in
advance, not fitted). Writes docs/inverse_families.json, stamped with the
commit.

    python scripts/inverse_families.py [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from inverse_cv import FOLDS
from inverse_report import inverse_config, perturbed

from xanesnet.data.dataset import heldout_mask
from xanesnet.errors import XanesnetError
from xanesnet.experiments import ROOT, cv_folds, fe_data_dir, git_commit
from xanesnet.inverse import InverseData, InverseInput, InversePredictor, build_inverse_set, train_inverse
from xanesnet.io.spectra import read_spectrum

FAMILIES = ("network", "boosted_trees", "nearest_neighbours")


def sklearn_family(name: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    if name == "boosted_trees":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    return KNeighborsClassifier(5, weights="distance")


def fold_probabilities(data: InverseData, inputs: InverseInput, train: np.ndarray, x_test: np.ndarray, n_classes: int,
                       seed: int) -> dict[str, np.ndarray]:
    """Each family's CN class probabilities (n_test, n_classes) for ``x_test``, trained on the rows ``train``."""
    from sklearn.preprocessing import StandardScaler

    subset = InverseData(ids=[data.ids[i] for i in train], x=data.x[train], e0=data.e0[train],
                         targets=data.targets.take(train))
    with tempfile.TemporaryDirectory() as tmp:
        train_inverse(subset, inputs, Path(tmp) / "m", config=inverse_config(1, seed), progress=False)
        network = InversePredictor.from_bundle(Path(tmp) / "m")
    out = {name: np.zeros((len(x_test), n_classes)) for name in FAMILIES}
    shells = network.predict_inputs(x_test, ids=[str(k) for k in range(len(x_test))], e0=np.zeros(len(x_test)))
    out["network"][:, shells.classes] = shells.probabilities
    pad = (data.x.shape[1] - len(inputs.energies)) // 2
    centre = data.x[train, pad: pad + len(inputs.energies)]
    scaler = StandardScaler().fit(centre)
    for name in FAMILIES[1:]:
        model = sklearn_family(name, seed).fit(scaler.transform(centre), data.targets.cn[train])
        out[name][:, model.classes_] = model.predict_proba(scaler.transform(x_test))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--data", help="the Fe data archive (default ../shared/data/fe_k_fdmnes_train.tar.gz)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "inverse_families.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    data_dir = fe_data_dir(args.data)
    inputs = InverseInput()
    data = build_inverse_set(data_dir / "xyz", data_dir / "xanes_conv", inputs)
    pool = np.flatnonzero(~heldout_mask(data.ids))
    folds = cv_folds([data.ids[i] for i in pool], FOLDS)
    n_classes = int(data.targets.cn.max()) + 1
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        probabilities: dict[str, list[np.ndarray]] = {name: [] for name in FAMILIES}
        truth, refused = [], 0
        for k in range(FOLDS):
            test = pool[folds == k]
            shifted = perturbed([read_spectrum(data_dir / "xanes_conv" / f"{data.ids[i]}.txt") for i in test], 2.0, 0.0,
                                seed=1)
            x_test, kept = [], []
            for i, spectrum in zip(test, shifted):
                try:
                    x_test.append(inputs.read(spectrum)[0])
                except XanesnetError:  # the edge leaves the window: refused, as by 'xanesnet invert'
                    refused += 1
                    continue
                kept.append(i)
            for name, p in fold_probabilities(data, inputs, pool[folds != k], np.array(x_test), n_classes, seed).items():
                probabilities[name].append(p)
            truth.append(data.targets.cn[np.array(kept)])
        cn = np.concatenate(truth)
        joined = {name: np.vstack(p) for name, p in probabilities.items()}
        exact = {" + ".join(names): float(np.mean(np.mean([joined[n] for n in names], axis=0).argmax(1) == cn))
                 for size in range(1, len(FAMILIES) + 1) for names in combinations(FAMILIES, size)}
        rows.append({"seed": seed, "cn_exact": exact, "n": int(len(cn)), "refused": refused,
                     "seconds": time.perf_counter() - start})
        print(f"seed {seed}: " + ", ".join(f"{name} {v:.3f}" for name, v in exact.items()), flush=True)
    args.out.write_text(json.dumps({"commit": git_commit(), "folds": FOLDS, "shift_ev": 2.0, "families": list(FAMILIES),
                                    "blend": "equal-weight mean of the class probabilities", "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
