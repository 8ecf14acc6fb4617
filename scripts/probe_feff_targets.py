"""Which FEFF targets can the structure explain? A quick kernel-ridge probe behind two choices in docs/feff_models.md.

For each metal and spectrum, on the molecules outside the held-out 10%, the
5-fold CV MSE ratio (to the fold-training mean) of a kernel ridge regression
(RBF, standardised and clipped wACSF, fixed alpha and gamma: no tuning) for

- ``absolute``: the spectrum on the model's absolute grid, as FEFF's scale;
- ``absolute_shape``: the same scaled to mean intensity 1 on the grid;
- ``fermi_relative`` / ``fermi_relative_shape``: the spectrum on a grid
  relative to each molecule's own Fermi level E_F (raw / shape);
- ``e_fermi``: E_F itself (what a model on an E_F-relative grid would also
  have to predict to place its output on absolute energies);
- XES only, ``main_line_relative`` (the shape, mean intensity 1): each
  spectrum shifted so that its main line sits where the fold-training mean
  spectrum's does (the shift, within +-8 eV, that best correlates it with
  that mean), the aligned spectra and the shift regressed separately, and the
  predicted spectrum shifted back onto the absolute grid: scored there, so it
  is directly comparable with ``absolute_shape``; ``main_line`` is the CV
  ratio of the shift alone (``main_line_std_ev`` its spread).

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


def regress(x: np.ndarray, y: np.ndarray, fit: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Kernel ridge fitted on rows ``fit``, predicting rows ``test`` (standardised, clipped inputs and targets)."""
    scaler = StandardScaler().fit(x[fit])
    xs = np.clip(scaler.transform(x), -10, 10)
    mean, std = y[fit].mean(0), y[fit].std(0) + 1e-12
    model = KernelRidge(alpha=0.3, kernel="rbf", gamma=1.0 / x.shape[1]).fit(xs[fit], (y[fit] - mean) / std)
    return model.predict(xs[test]) * std + mean


def cv_ratio(x: np.ndarray, y: np.ndarray) -> float:
    se = base = 0.0
    for fit, test in KFold(5, shuffle=True, random_state=0).split(x):
        se += float(np.sum((regress(x, y, fit, test) - y[test]) ** 2))
        base += float(np.sum((y[fit].mean(0) - y[test]) ** 2))
    return se / base


MAX_SHIFT = 8.0


def shifted(y: np.ndarray, grid: np.ndarray, shift: float) -> np.ndarray:
    """``y`` (on ``grid``) moved by ``-shift`` eV: the value at ``e`` is ``y(e + shift)`` (ends continued)."""
    return np.interp(grid + shift, grid, y)


def main_line_shift(y: np.ndarray, grid: np.ndarray, reference: np.ndarray) -> float:
    """The shift (grid steps, within +-MAX_SHIFT eV) that best correlates ``y`` with ``reference``: its main-line offset."""
    step = grid[1] - grid[0]
    shifts = np.arange(-round(MAX_SHIFT / step), round(MAX_SHIFT / step) + 1) * step
    return float(shifts[np.argmax([shifted(y, grid, d) @ reference for d in shifts])])


def aligned_cv_ratios(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[float, float, float]:
    """CV ratios of the main-line route (scored on the absolute grid) and of the shift alone, and the shifts' spread."""
    se = base = se_shift = base_shift = 0.0
    spread = []
    for fit, test in KFold(5, shuffle=True, random_state=0).split(x):
        reference = y[fit].mean(0)
        for _ in range(2):  # align to the mean, then to the mean of the aligned spectra
            shift = np.array([main_line_shift(v, grid, reference) for v in y[fit]])
            aligned = np.array([shifted(v, grid, d) for v, d in zip(y[fit], shift)])
            reference = aligned.mean(0)
        spread.append(shift.std())
        aligned_all, shift_all = np.zeros_like(y), np.zeros((len(y), 1))
        aligned_all[fit], shift_all[fit, 0] = aligned, shift
        shape = regress(x, aligned_all, fit, test)
        offset = regress(x, shift_all, fit, test)[:, 0]
        pred = np.array([shifted(v, grid, -d) for v, d in zip(shape, offset)])
        se += float(np.sum((pred - y[test]) ** 2))
        base += float(np.sum((y[fit].mean(0) - y[test]) ** 2))
        truth = np.array([main_line_shift(v, grid, reference) for v in y[test]])
        se_shift += float(np.sum((offset - truth) ** 2))
        base_shift += float(np.sum((shift.mean() - truth) ** 2))
    return se / base, se_shift / base_shift, float(np.mean(spread))


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
    shape = absolute / absolute.mean(1, keepdims=True)
    row = {"metal": metal, "spectrum": spectrum, "n": len(mols),
           "absolute": cv_ratio(x, absolute), "absolute_shape": cv_ratio(x, shape),
           "fermi_relative": cv_ratio(x, rel), "fermi_relative_shape": cv_ratio(x, rel / rel.mean(1, keepdims=True)),
           "e_fermi": cv_ratio(x, ef[:, None]), "e_fermi_std_ev": float(ef.std())}
    if spectrum == "xes":
        row["main_line_relative"], row["main_line"], row["main_line_std_ev"] = aligned_cv_ratios(x, shape, grid)
    return row


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
