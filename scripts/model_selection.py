"""Compare descriptor and target variants on a fixed validation split of the Fe data (never the held-out test).

The held-out 10% (by name hash) is removed first and never looked at; the
rest is split once (``xanesnet.experiments.fixed_splits``: seed 12345) into 90% for fitting and 10% for selection.
Each variant is trained with several seeds; the table of validation MSE
(mean and spread), main-peak error and fit time goes to docs/model_selection.md.

    python scripts/model_selection.py [--seeds 3] [--variants plain-2021,elements-std] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from xanesnet.experiments import ROOT, cache_dir, fe_data_dir, fixed_splits, git_commit

from xanesnet.analysis.metrics import evaluate_spectra
from xanesnet.atomic import write_text
from xanesnet.config import Config, TrainingSettings
from xanesnet.descriptors import WACSF, preset
from xanesnet.bundle import Bundle
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.pipeline import build_training_set, model_config
from xanesnet.predict import Predictor
from xanesnet.training import train

ELEMENT_GROUPS = ("H", "C", "N", "O", "P,S,As,Se", "F,Cl,Br,I")
LIGAND_GROUPS = ("H", "C", "N", "O")
DONOR_GROUPS = ("C", "N", "O")


def variants() -> dict[str, Config]:
    plain = preset("xanesnet-2021").to_dict()
    elements = WACSF(element_groups=ELEMENT_GROUPS).to_dict()  # the default up to descriptor revision 2
    ligands = {"angular_groups": LIGAND_GROUPS, "shell_groups": DONOR_GROUPS, "donor_env_groups": LIGAND_GROUPS}
    angular = WACSF(element_groups=ELEMENT_GROUPS, angular_groups=LIGAND_GROUPS).to_dict()
    shell = WACSF(element_groups=ELEMENT_GROUPS, shell_groups=DONOR_GROUPS).to_dict()
    shell_donor = WACSF(element_groups=ELEMENT_GROUPS, shell_groups=DONOR_GROUPS, donor_env_groups=LIGAND_GROUPS).to_dict()
    full = WACSF(element_groups=ELEMENT_GROUPS, **ligands).to_dict()
    assert full == preset("default").to_dict()
    elements24 = WACSF(element_groups=ELEMENT_GROUPS, n_element_g2=24).to_dict()
    fixed = WACSF().to_dict()

    def single(descriptor, hidden=(512, 512), dropout=0.0, **training) -> Config:
        """One MLP, no dropout unless asked: the selection runs compare one change at a time."""
        return Config(descriptor=descriptor,
                      model={"kind": "mlp", "hidden": list(hidden), "activation": "silu", "dropout": dropout},
                      training=TrainingSettings(ensemble=1, patience=80, **training))

    return {
        "plain-2021/none": single(plain, target_transform="none"),
        "plain-2021/std": single(plain),
        "wacsf-fixed/std": single(fixed),
        "elements/std": single(elements),
        "elements24/std": single(elements24),
        "elements/pca30": single(elements, target_transform="pca:30"),
        "elements/std/drop0.1": single(elements, dropout=0.1),
        "elements/std/3x512": single(elements, hidden=(512, 512, 512)),
        "elements/std/256x2": single(elements, hidden=(256, 256)),
        "elements/std/bs32": single(elements, batch_size=32),
        "elements/std/wd1e-4": single(elements, weight_decay=1e-4),
        # descriptor revision 3: the ligand channels, one block at a time, on top of elements/std/drop0.1
        "elements+angular/drop0.1": single(angular, dropout=0.1),
        "elements+shell/drop0.1": single(shell, dropout=0.1),
        "elements+shell+donor/drop0.1": single(shell_donor, dropout=0.1),
        "default/drop0.1": single(full, dropout=0.1),  # all three: the default preset
        "default/drop0.1/3x512": single(full, hidden=(512, 512, 512), dropout=0.1),
        "default/drop0.2": single(full, dropout=0.2),
        # the shipped configuration (the library defaults: dropout 0.1, 5 members), and with bootstrap-resampled members
        "default-ensemble": Config(),
        "default-ensemble/bootstrap": Config(training=TrainingSettings(bootstrap=True)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", help="comma-separated subset of variant names")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs" / "model_selection.md"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data_dir = fe_data_dir()
    chosen = variants()
    if args.variants:
        chosen = {k: v for k, v in chosen.items() if k in args.variants.split(",")}
    results = {}
    for name, base in chosen.items():
        data = build_training_set(data_dir / "xyz", data_dir / "xanes_conv", base, cache=cache_dir() / "features.h5")
        splits = fixed_splits(data.ids)  # the held-out test is never used here
        x, y = data.x, data.y
        sel, fit = np.flatnonzero(splits.validation), np.flatnonzero(splits.fit)
        rows = []
        for seed in range(args.seeds):
            cfg = copy.deepcopy(base)
            cfg.seed = seed

            start = time.perf_counter()
            trained = train(x[fit], y[fit], cfg, progress=False)
            seconds = time.perf_counter() - start
            names = descriptor_from_dict(cfg.descriptor).feature_names
            pred = Predictor(Bundle(path=None, config=model_config(trained, data.energy, names), members=trained.members))
            out = pred.predict_features(x[sel])
            m = evaluate_spectra(data.energy, y[sel], out.mean)
            member_mse = float(np.mean([np.mean((s - y[sel]) ** 2) for s in out.samples]))
            rows.append({"seed": seed, "mse": m["mse"], "member_mse": member_mse, "peak_ev_median": m["peak_position_error_ev_median"],
                         "seconds": seconds, "epochs": trained.history[0]["best_epoch"]})
            print(f"{name:24s} seed {seed}: val MSE {m['mse']:.3e}  peak {m['peak_position_error_ev_median']:.3f} eV  {seconds:.0f} s", flush=True)
        results[name] = rows
    write_report(results, Path(args.out), n_features={k: len(preset_names(v)) for k, v in chosen.items()})


def preset_names(config: Config) -> list[str]:
    return descriptor_from_dict(config.descriptor).feature_names


def write_report(results: dict, out: Path, n_features: dict) -> None:
    base = np.mean([r["mse"] for r in results.get("plain-2021/none", [])]) if "plain-2021/none" in results else None
    lines = ["# Model selection on the Fe K-edge data", "",
             "Fixed validation split (10% of the non-held-out data, seed 12345); the held-out test 10% is never used. "
             f"Commit: `{(git_commit() or 'unknown')[:12]}`.",
             "Each variant trained with seeds 0..N-1; MSE on the intensity scale of the convolved FDMNES spectra.", "",
             "| variant | features | val MSE (mean ± sd) | vs plain-2021/none | median peak error (eV) | fit time (s) |",
             "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        mse = np.array([r["mse"] for r in rows])
        ratio = f"{mse.mean() / base:.2f}x" if base else "-"
        lines.append(f"| {name} | {n_features[name]} | {mse.mean():.3e} ± {mse.std():.1e} | {ratio} | "
                     f"{np.mean([r['peak_ev_median'] for r in rows]):.3f} | {np.mean([r['seconds'] for r in rows]):.0f} |")
    lines += ["", "Raw results:", "", "```json", json.dumps(results, indent=1), "```", ""]
    write_text(out, "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
