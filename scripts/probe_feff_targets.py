"""Which FEFF targets can the structure explain? A quick kernel-ridge probe behind two choices in docs/feff_models.md.

For each metal and spectrum, on the molecules outside the held-out 10%, the
5-fold CV MSE ratio (to the fold-training mean) of a kernel ridge regression
(RBF, standardised and clipped wACSF, fixed alpha and gamma: no tuning) for

- ``absolute``: the spectrum on the model's absolute grid, as FEFF's scale;
- ``absolute_shape``: the same scaled to mean intensity 1 on the grid;
- ``fermi_relative`` / ``fermi_relative_shape``: the spectrum on a grid
  relative to each molecule's own Fermi level E_F (raw / shape);
- ``e_fermi``: E_F itself (what a model on an E_F-relative grid would also
  have to predict to place its output on absolute energies).

Writes docs/feff_target_probe.json, stamped with the commit.

    python scripts/probe_feff_targets.py [--metals Ti V] [--spectra xes]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from train_feff_models import GRIDS, ROOT, SPECTRA, commit, make_config

from xanesnet.data.dataset import heldout_mask
from xanesnet.data.feff import load_feff
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.io.structures import FIRST_ROW_TM
from xanesnet.spectra import parse_grid


def cv_ratio(x: np.ndarray, y: np.ndarray) -> float:
    se = base = 0.0
    for fit, test in KFold(5, shuffle=True, random_state=0).split(x):
        scaler = StandardScaler().fit(x[fit])
        xs = np.clip(scaler.transform(x), -10, 10)
        mean, std = y[fit].mean(0), y[fit].std(0) + 1e-12
        model = KernelRidge(alpha=0.3, kernel="rbf", gamma=1.0 / x.shape[1]).fit(xs[fit], (y[fit] - mean) / std)
        se += float(np.sum((model.predict(xs[test]) * std + mean - y[test]) ** 2))
        base += float(np.sum((mean - y[test]) ** 2))
    return se / base


def probe(metal: str, spectrum: str) -> dict:
    descriptor = descriptor_from_dict(make_config(metal, spectrum).descriptor)
    grid = parse_grid(GRIDS[(metal, spectrum)]).energies()
    mols = [s for _, s in load_feff(metal, spectrum).molecules() if not heldout_mask([s.structure.name])[0]]
    ef = np.array([s.spectrum.meta["e_fermi"] for s in mols])
    relative = grid - np.median(ef)
    keep = np.array([s.spectrum.energy[0] <= min(grid[0], relative[0] + e) and
                     s.spectrum.energy[-1] >= max(grid[-1], relative[-1] + e) for s, e in zip(mols, ef)])
    mols, ef = [m for m, k in zip(mols, keep) if k], ef[keep]
    x = np.array([descriptor.create(s.structure, s.absorber) for s in mols])
    absolute = np.array([np.interp(grid, s.spectrum.energy, s.spectrum.intensity) for s in mols])
    rel = np.array([np.interp(relative + e, s.spectrum.energy, s.spectrum.intensity) for s, e in zip(mols, ef)])
    return {"metal": metal, "spectrum": spectrum, "n": len(mols),
            "absolute": cv_ratio(x, absolute), "absolute_shape": cv_ratio(x, absolute / absolute.mean(1, keepdims=True)),
            "fermi_relative": cv_ratio(x, rel), "fermi_relative_shape": cv_ratio(x, rel / rel.mean(1, keepdims=True)),
            "e_fermi": cv_ratio(x, ef[:, None]), "e_fermi_std_ev": float(ef.std())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--spectra", nargs="+", default=list(SPECTRA), choices=SPECTRA)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "feff_target_probe.json")
    args = ap.parse_args()
    rows = []
    for spectrum in args.spectra:
        for metal in args.metals:
            rows.append(probe(metal, spectrum))
            r = rows[-1]
            print(" ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True)
    args.out.write_text(json.dumps({"commit": commit(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
