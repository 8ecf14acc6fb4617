"""Choose the batch size and patience rules of small training sets on validation data, never on the data reported on.

``xanesnet train`` scales its defaults with the data size
(``TrainingSettings.for_size``). Below 500 spectra the batch size is n/d
rounded down to a power of two (16-64) and the patience n/10 epochs with a
floor; this script picks d (1 or 2) and the floor (20, 30 or 50). It trains
the default model on the 99-molecule Fe sample (as ``xanesnet train --holdout
0.1`` does) for each candidate pair and seeds 0-2 (d = 1 with floor 50 is the
former fixed defaults on one thread), and scores every model on the first of two
disjoint draws of 500 further Fe complexes of the full FDMNES set
(``xanesnet.experiments.unseen_fe_draws``: outside the sample and outside the
full set's held-out 10%). The pair with the lowest mean validation MSE wins;
``scripts/benchmark.py --sections smalltrain`` then reports the chosen rules
against the former fixed defaults on the *second* draw, which chose nothing.

    python scripts/small_data_rules.py [--out docs/small_data_rules.json]

A test checks that ``TrainingSettings.for_size`` uses the rules recorded here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from xanesnet.experiments import cache_dir, fe_subset, shared_data, unseen_fe_draws, write_report

ROOT = Path(__file__).resolve().parents[1]
DIVISORS = (1, 2)
FLOORS = (20, 30, 50)
CANDIDATES = tuple((d, f) for d in DIVISORS for f in FLOORS)
SEEDS = (0, 1, 2)
N_VALIDATION = 500


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "small_data_rules.json")
    ap.add_argument("--work", type=Path, default=cache_dir() / "small_data_rules")
    args = ap.parse_args()
    import torch

    from xanesnet.config import Config
    from xanesnet.data.dataset import heldout_mask
    from xanesnet.pipeline import build_training_set, train_model
    from xanesnet.predict import Predictor

    torch.set_num_threads(1)
    sample = shared_data("fe_k_fdmnes_sample")
    data = build_training_set(sample / "xyz", sample / "xanes", Config(), cache=args.work / "sample_features.h5")
    validation_names, _ = unseen_fe_draws(data.ids, [N_VALIDATION, N_VALIDATION])
    validation = fe_subset(validation_names, Config(), args.work / "validation", cache=args.work / "validation_features.h5")
    n_fit = int((~heldout_mask(data.ids, 0.1)).sum())  # what for_size sees: the sample without its held-out 10%
    runs = []
    for divisor, floor in CANDIDATES:
        for seed in SEEDS:
            cfg = Config(seed=seed)
            # what the rules give the sample with these parameters (n/10 is below every floor)
            cfg.training.patience = floor
            cfg.training.batch_size = int(min(64, max(16, 2 ** np.floor(np.log2(n_fit / divisor)))))
            t0 = time.process_time()
            out = args.work / f"d{divisor}_p{floor}_s{seed}"
            saved = train_model(data, cfg, out, holdout=0.1, progress=False)
            pred = Predictor.from_bundle(out).predict_features(validation.x, ids=validation.ids)
            runs.append({"divisor": divisor, "floor": floor, "batch_size": cfg.training.batch_size, "seed": seed,
                         "cpu_s": time.process_time() - t0,
                         "validation_mse": float(np.mean((pred.mean - validation.y) ** 2)),
                         "epochs_run": [h["epochs_run"] for h in saved["history"]]})
            print(f"divisor {divisor} floor {floor} seed {seed}: validation MSE {runs[-1]['validation_mse']:.4g}, "
                  f"{runs[-1]['cpu_s']:.1f} s CPU", flush=True)
    def key(c: tuple[int, int]) -> str:
        return f"divisor {c[0]}, floor {c[1]}"

    mean = {key(c): float(np.mean([r["validation_mse"] for r in runs if (r["divisor"], r["floor"]) == c])) for c in CANDIDATES}
    cpu = {key(c): float(np.mean([r["cpu_s"] for r in runs if (r["divisor"], r["floor"]) == c])) for c in CANDIDATES}
    divisor, floor = min(CANDIDATES, key=lambda c: mean[key(c)])
    write_report(args.out, {"what": "batch-size divisor and patience floor of TrainingSettings.for_size, chosen on validation",
                            "n_sample": len(data.ids), "n_fit": n_fit, "n_validation": len(validation.ids),
                            "seeds": list(SEEDS), "mean_validation_mse": mean, "mean_cpu_s": cpu,
                            "chosen": {"batch_divisor": divisor, "patience_floor": floor}, "runs": runs})
    print(f"chosen: batch n/{divisor}, patience floor {floor} (mean validation MSE {mean[key((divisor, floor))]:.4g}); "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
