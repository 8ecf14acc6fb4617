"""Does `xanesnet select` pick better simulations than chance? A retraining experiment on the Fe data.

A user grows a training set by simulating the candidates the model is least
sure of. This measures whether that pays: start from a small labelled set,
let each selection strategy pick the next batch from a pool, add the picks
with their real FDMNES spectra, retrain, and compare the error on a fixed
evaluation set.

Data: the 4,079 Fe complexes without the held-out 10% (never used here). The
fixed validation split of ``xanesnet.experiments.fixed_splits`` (10%, seed 12345) is
the evaluation set; from the rest, ``--start`` molecules drawn at random are
labelled and the others form the pool. The starting model is an ensemble of 5
(the shipped configuration); each strategy's picks are then scored by
retraining single networks with ``--seeds`` seeds (the random pick is redrawn
for each seed).

    python scripts/active_learning.py [--start 800 1600] [--batch 400] [--seeds 5] [--out docs]

Writes ``active_learning.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
from xanesnet.experiments import cache_dir, fe_data_dir, fixed_splits, write_report as stamped_report

from xanesnet.analysis.metrics import evaluate_spectra
from xanesnet.atomic import write_text
from xanesnet.config import Config
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.pipeline import build_training_set, calibrated_predictor, model_config
from xanesnet.predict import Predictor
from xanesnet.training import train
from xanesnet.uncertainty import SELECTION_STRATEGIES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, nargs="+", default=[800, 1600],
                    help="labelled molecules to start from (one experiment each)")
    ap.add_argument("--batch", type=int, default=400, help="molecules each strategy picks")
    ap.add_argument("--seeds", type=int, default=5, help="retrainings per strategy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    base = Config(seed=0)
    data_dir = fe_data_dir()
    data = build_training_set(data_dir / "xyz", data_dir / "xanes_conv", base, cache=cache_dir() / "features.h5")
    splits = fixed_splits(data.ids)  # the held-out test is never used here
    x, y = data.x, data.y
    evaluation, rest = np.flatnonzero(splits.validation), np.flatnonzero(splits.fit)
    names = descriptor_from_dict(base.descriptor).feature_names

    def fit(rows: np.ndarray, config: Config) -> tuple[Predictor, float]:
        t0 = time.perf_counter()
        trained = train(x[rows], y[rows], config, progress=False)  # calibrated, as `xanesnet train` saves it
        predictor = calibrated_predictor(trained, x[rows], y[rows], model_config(trained, data.energy, names))
        return predictor, time.perf_counter() - t0

    def single(seed: int) -> Config:
        cfg = copy.deepcopy(base)
        cfg.seed, cfg.training.ensemble = seed, 1
        return cfg

    def score(predictor: Predictor) -> float:
        return evaluate_spectra(data.energy, y[evaluation], predictor.predict_features(x[evaluation]).mean)["mse"]

    experiments = []
    for n_start in args.start:
        start = np.sort(np.random.default_rng(0).choice(rest, n_start, replace=False))
        pool = np.setdiff1d(rest, start)
        print(f"evaluation {len(evaluation)}, start {len(start)}, pool {len(pool)}", flush=True)
        model, seconds = fit(start, base)
        start_mse = score(model)
        print(f"starting ensemble: evaluation MSE {start_mse:.3e} ({seconds:.0f} s)", flush=True)
        pred = model.predict_features(x[pool])
        pool_err = np.mean((pred.mean - y[pool]) ** 2, axis=1)  # what the starting model gets wrong, for the report only
        space = _descriptor_space(pred.features)
        results: dict[str, list[dict]] = {"none": [{"seed": seed, "mse": score(fit(start, single(seed))[0])}
                                                   for seed in range(args.seeds)]}
        for name, strategy in SELECTION_STRATEGIES.items():
            results[name] = []
            for seed in range(args.seeds):
                picks = strategy(pred.score, pred.extrapolation, pred.features, args.batch, seed=seed)
                mse = score(fit(np.concatenate([start, pool[picks]]), single(seed))[0])
                results[name].append({"seed": seed, "mse": mse, "n_picked": int(len(picks)),
                                      "picked_error": float(pool_err[picks].mean()),
                                      "picked_untrusted": float(np.mean(~pred.trusted[picks])),
                                      "picked_with_twin": _twin_fraction(space[picks])})
                print(f"{name:12s} seed {seed}: evaluation MSE {mse:.3e}; starting model's MSE on the picks "
                      f"{results[name][-1]['picked_error']:.3e}", flush=True)
        experiments.append({"start": n_start, "pool": len(pool), "start_ensemble_mse": start_mse,
                            "pool_mse": float(pool_err.mean()), "results": results})
    write_report(args, experiments, len(evaluation))


def _descriptor_space(features: np.ndarray) -> np.ndarray:
    """The pool's descriptors standardised (clipped at 5 sd) and projected on 16 principal components."""
    from sklearn.decomposition import PCA

    z = features - features.mean(0)
    z = np.clip(z / np.where(z.std(0) > 0, z.std(0), 1.0), -5.0, 5.0)
    return PCA(n_components=16, random_state=0).fit_transform(z)


def _twin_fraction(points: np.ndarray, radius: float = 1.0) -> float:
    """Share of the picks with another pick closer than ``radius`` (a near-copy: little new to learn)."""
    d = np.sqrt(((points[:, None, :] - points[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(np.mean(d.min(1) < radius))


def write_report(args, experiments: list[dict], n_eval: int) -> None:
    from xanesnet.uncertainty import SELECTION_STRATEGIES

    out = Path(args.out)
    lines = ["# Growing the training set: does `xanesnet select` beat a random pick?", "",
             f"Fe K-edge data without the held-out 10%. Evaluation: the fixed validation split ({n_eval} molecules, "
             "never picked). Start: a random labelled set; pool: the rest. The starting ensemble of 5 (the shipped "
             f"configuration) scores the pool; each strategy picks {args.batch}; single networks (the shipped "
             f"configuration, one member) are retrained on start + picks with seeds 0-{args.seeds - 1} (the random "
             "and k-means picks are redrawn with each seed). "
             f"`python scripts/active_learning.py --start {' '.join(str(e['start']) for e in experiments)} "
             f"--batch {args.batch} --seeds {args.seeds}`."]
    for e in experiments:
        ref = np.mean([r["mse"] for r in e["results"]["random"]])
        lines += ["", f"## Start {e['start']} labelled, pool {e['pool']} (starting ensemble: evaluation MSE "
                      f"{e['start_ensemble_mse']:.3e}, MSE on the pool {e['pool_mse']:.3e})", "",
                  "| strategy | evaluation MSE after retraining (mean ± sd) | vs random | starting model's MSE on its "
                  "picks | picks the starting model did not trust | picks with a near-twin among the picks |",
                  "|---|---|---|---|---|---|"]
        for name, runs in e["results"].items():
            mse = np.array([r["mse"] for r in runs])
            label = f"none (the {e['start']} only)" if name == "none" else name
            picked = "" if name == "none" else f"{np.mean([r['picked_error'] for r in runs]):.3e}"
            untrusted = "" if name == "none" else f"{np.mean([r['picked_untrusted'] for r in runs]):.0%}"
            twins = "" if name == "none" else f"{np.mean([r['picked_with_twin'] for r in runs]):.1%}"
            lines.append(f"| {label} | {mse.mean():.3e} ± {mse.std():.1e} | {mse.mean() / ref:.2f}x | {picked} | {untrusted} "
                         f"| {twins} |")
    lines += ["", "Near-twin: another pick closer than 1.0 in the pool's standardised descriptor space (clipped at 5 sd, "
                  "first 16 principal components).", "",
              "Strategies (`xanesnet.uncertainty.SELECTION_STRATEGIES`, `xanesnet select --strategy`):", ""]
    for name, strategy in SELECTION_STRATEGIES.items():
        lines.append(f"- `{name}`: {(strategy.__doc__ or '').strip().splitlines()[0]}")
    write_text(out / "active_learning.md", "\n".join(lines) + "\n")
    stamped_report(out / "active_learning.json", {"batch": args.batch, "seeds": args.seeds, "experiments": experiments})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
