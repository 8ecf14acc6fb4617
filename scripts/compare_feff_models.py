"""Per-element vs universal FEFF models on identical 5-fold CV folds, and per-element learning curves.

For each spectrum (XANES, XES) and metal (Ti-Zn), on the molecules outside the
fixed held-out 10% (never used here):

- **per-element**: the shipped settings of ``scripts/train_feff_models.py``
  (one member), trained on 25%, 50% and 100% of each fold's training part
  (a learning curve: MSE vs training-set size);
- **universal**: one network for all nine metals, input = the same descriptor
  plus a one-hot of the absorbing element (``xanesnet.descriptors.AbsorberElement``),
  output = the spectrum on the grid shared by all metals (each metal's grid
  has the same width and number of points, relative to its own start, so
  every output point sits at a fixed offset from the metal's reference
  energy). Fold k of the universal run is the union of every metal's fold k,
  so each molecule is predicted by a network that never saw it, exactly as
  in the per-element runs.

Scores are MSE over the test folds relative to predicting each fold's mean
training spectrum of that metal (ratio < 1 beats the mean; the issue's bar is
1/3). One member per network here, so the numbers are conservative for the
shipped 5-member ensembles. Writes docs/feff_comparison.json, stamped with
the commit.

    python scripts/compare_feff_models.py [--metals Ti Cu] [--spectra xes] [--fractions 0.25 0.5 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from train_feff_models import (COMPARISON, DESCRIPTOR, MODEL, ROOT, SPECTRA, TRAINING, UNIVERSAL_DESCRIPTOR, UNIVERSAL_MODEL,
                               UNIVERSAL_TRAINING, commit, load_data, make_config)

from xanesnet.data.dataset import heldout_mask
from xanesnet.experiments import replace_between
from xanesnet.io.structures import FIRST_ROW_TM

FOLDS = 5
FRACTIONS = (0.25, 0.5, 1.0)


def folds_of(n: int, folds: int = FOLDS) -> list[np.ndarray]:
    """Test indices of each fold: a fixed permutation (seed 12345) dealt round-robin, as in train_feff_models."""
    perm = np.random.default_rng(12345).permutation(n)
    return [np.sort(perm[k::folds]) for k in range(folds)]


def subset(fit: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded random ``fraction`` of the training indices ``fit`` (all of them for 1)."""
    if fraction >= 1:
        return fit
    return np.sort(np.random.default_rng(seed).permutation(fit)[: max(8, int(round(fraction * len(fit))))])


def fit_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, energy: np.ndarray, config) -> np.ndarray:
    """Mean prediction of a network trained on ``(x_fit, y_fit)``."""
    from xanesnet.bundle import Bundle
    from xanesnet.pipeline import model_config
    from xanesnet.predict import Predictor
    from xanesnet.training import train

    trained = train(x_fit, y_fit, config, progress=False)
    bundle = Bundle(path=None, config=model_config(trained, energy, [f"x{i}" for i in range(x_fit.shape[1])]),
                    members=trained.members)
    return Predictor(bundle).predict_features(x_test).mean


def one_member(training: dict) -> dict:
    return {**training, "ensemble": 1}


def compare(spectrum: str, metals: list[str], fractions: tuple[float, ...]) -> list[dict]:
    sets = {}
    for metal in metals:
        data, _ = load_data(metal, spectrum, make_config(metal, spectrum))
        keep = ~heldout_mask(data.ids)
        sets[metal] = (data.x[keep], data.y[keep], data.energy)
        print(f"{metal} {spectrum}: {int(keep.sum())} molecules outside the held-out split", flush=True)
    folds = {m: folds_of(len(sets[m][0])) for m in metals}
    rows = []
    # per element, with a learning curve
    per = {}
    for metal in metals:
        x, y, energy = sets[metal]
        config = make_config(metal, spectrum, training=one_member(TRAINING))
        curve = []
        for fraction in fractions:
            se = base = 0.0
            n_fit = []
            for test in folds[metal]:
                fit = subset(np.setdiff1d(np.arange(len(x)), test), fraction)
                n_fit.append(len(fit))
                pred = fit_predict(x[fit], y[fit], x[test], energy, config)
                se += float(np.sum((pred - y[test]) ** 2))
                base += float(np.sum((y[test] - y[fit].mean(0)) ** 2))
            curve.append({"fraction": fraction, "n_fit": float(np.mean(n_fit)), "mse": se / y.size, "mean_mse": base / y.size,
                          "ratio": se / base})
            print(f"  {metal} {spectrum} per-element {fraction:.2f} (n_fit {np.mean(n_fit):.0f}): ratio {se / base:.3f}",
                  flush=True)
        per[metal] = curve
    # universal: fold k = every metal's fold k
    onehot = {m: np.eye(len(FIRST_ROW_TM))[FIRST_ROW_TM.index(m)] for m in metals}
    config = make_config(metals[0], spectrum, descriptor=UNIVERSAL_DESCRIPTOR,
                         model=UNIVERSAL_MODEL, training=one_member(UNIVERSAL_TRAINING))
    se = {m: 0.0 for m in metals}
    base = {m: 0.0 for m in metals}
    relative = sets[metals[0]][2] - sets[metals[0]][2][0]
    start = time.perf_counter()
    for k in range(FOLDS):
        xs, ys = [], []
        for m in metals:
            x, y, _ = sets[m]
            fit = np.setdiff1d(np.arange(len(x)), folds[m][k])
            xs.append(np.hstack([x[fit], np.tile(onehot[m], (len(fit), 1))]))
            ys.append(y[fit])
        x_fit, y_fit = np.vstack(xs), np.vstack(ys)
        x_test = np.vstack([np.hstack([sets[m][0][folds[m][k]], np.tile(onehot[m], (len(folds[m][k]), 1))]) for m in metals])
        pred = fit_predict(x_fit, y_fit, x_test, relative, config)
        at = 0
        for m, y_m in zip(metals, ys):
            test = folds[m][k]
            p = pred[at: at + len(test)]
            at += len(test)
            se[m] += float(np.sum((p - sets[m][1][test]) ** 2))
            base[m] += float(np.sum((sets[m][1][test] - y_m.mean(0)) ** 2))
        print(f"  universal {spectrum} fold {k}: {time.perf_counter() - start:.0f} s", flush=True)
    for m in metals:
        full = per[m][-1]
        rows.append({"metal": m, "spectrum": spectrum, "n": int(len(sets[m][0])), "per_element": per[m],
                     "per_element_ratio": full["ratio"], "universal_ratio": se[m] / base[m],
                     "universal_mse": se[m] / sets[m][1].size,
                     "winner": "universal" if se[m] / base[m] < full["ratio"] else "per_element"})
        print(f"{m} {spectrum}: per-element {full['ratio']:.3f}, universal {se[m] / base[m]:.3f}", flush=True)
    return rows


def n_needed(curve: list[dict], target: float = 1 / 3) -> float | None:
    """Training-set size at which the learning curve's last segment, extended as a power law ``a n^-b``, reaches ``target``.

    The last two points set the exponent (curves flatten, so this is the
    less optimistic choice). ``None`` when the curve does not fall there (no
    extrapolation possible); the size itself when the target is already met.
    """
    n = np.array([c["n_fit"] for c in curve])
    r = np.array([c["ratio"] for c in curve])
    if r[-1] <= target:
        return float(n[-1])
    if len(n) < 2:
        return None
    slope = np.log(r[-1] / r[-2]) / np.log(n[-1] / n[-2])
    if slope >= 0:
        return None
    return float(n[-1] * (target / r[-1]) ** (1 / slope))


MARKERS = ("<!-- comparison -->", "<!-- /comparison -->")


def markdown(report: dict) -> str:
    """The comparison and learning-curve tables of docs/feff_models.md."""
    fr = report["fractions"]
    lines = [f"From `docs/feff_comparison.json` (`scripts/compare_feff_models.py`, commit `{report['commit']}`): MSE / "
             "mean-spectrum MSE over 5-fold CV on the non-held-out molecules (identical folds for both kinds; one "
             "network per fold). Learning curve: per-element, trained on "
             + ", ".join(f"{f:.0%}" for f in fr) + " of each fold's training part (`n_fit` in brackets). `n for 0.33`: "
             "the training-set size (per fold) at which the per-element curve's last segment, extended as a power law, "
             "reaches a third of the mean-spectrum MSE (a rough extrapolation; curves flatten, so it may be optimistic).", "",
             "| metal | spectrum | " + " | ".join(f"per-element {f:.0%}" for f in fr)
             + " | universal (100%) | winner | n for 0.33 |",
             "|---|---|" + "---|" * (len(fr) + 3)]
    for r in report["rows"]:
        need = n_needed(r["per_element"])
        cells = [f"{c['ratio']:.2f} ({c['n_fit']:.0f})" for c in r["per_element"]]
        lines.append(f"| {r['metal']} | {r['spectrum']} | " + " | ".join(cells)
                     + f" | {r['universal_ratio']:.2f} | {r['winner'].replace('_', '-')} | {_size(need)} |")
    return "\n".join(lines)


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n:.0f}" if n < 1e5 else "> 100,000"


def write_markdown(report: dict, path: Path) -> None:
    replace_between(path, MARKERS, "\n\n" + markdown(report) + "\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--spectra", nargs="+", default=list(SPECTRA), choices=SPECTRA)
    ap.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    ap.add_argument("--out", type=Path, default=COMPARISON)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", type=Path, default=ROOT / "docs" / "feff_models.md",
                    help="the document whose comparison section is rewritten")
    ap.add_argument("--markdown-only", action="store_true", help="only rewrite that section from the existing JSON")
    args = ap.parse_args()
    if args.markdown_only:
        write_markdown(json.loads(args.out.read_text()), args.markdown)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for spectrum in args.spectra:
        rows += compare(spectrum, args.metals, tuple(sorted(args.fractions)))
    report = {"commit": commit(), "folds": FOLDS, "fractions": sorted(args.fractions),
              "per_element": {"descriptor": DESCRIPTOR, "model": MODEL, "training": one_member(TRAINING)},
              "universal": {"descriptor": UNIVERSAL_DESCRIPTOR, "model": UNIVERSAL_MODEL,
                            "training": one_member(UNIVERSAL_TRAINING)},
              "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, args.markdown)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
