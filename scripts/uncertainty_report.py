"""How honest are the error bars? Coverage, sigma-error correlation and the trust flag on the Fe model.

On the fixed held-out 10% of the Fe data (never used for training or
calibration) this measures, for the shipped MLP ensemble (and its MC-dropout
mode) and for a Gaussian-process baseline trained on the same data:
accuracy, +-1/+-2 sigma coverage, Spearman(sigma, RMSE), the ensemble's gain
over its average member, and how often the trust flag trips on

* the held-out molecules themselves (in domain),
* the same molecules with every metal-ligand bond (< 2.6 A) stretched by 0.4 A,
* Cu and Zn complexes (tmQM geometries from ../shared/data/feff_3d) forced
  through the Fe model with ``absorber`` set to the metal.

Writes docs/uncertainty.md, docs/uncertainty.json and docs/calibration.png.

    python scripts/uncertainty_report.py [--model models/fe-k-xanes] [--gpr-out CACHE/gpr-fe]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from xanesnet.atomic import write_text
from xanesnet.experiments import ROOT, cache_dir, fe_data_dir, shared_root, write_report

from xanesnet.config import Config
from xanesnet.io.structures import find_structure_files, read_structure, resolve_absorber
from xanesnet.pipeline import build_training_set, score_predictions, train_model
from xanesnet.predict import Predictor
from xanesnet.training import split_validation
from xanesnet.uncertainty import EXTRAPOLATION_LIMIT, calibration_curve, labelling_order, out_of_range

STRETCH, BOND = 0.4, 2.6


def stretched(structure, absorber: int):
    """The molecule with every atom bonded to the absorber (r < 2.6 A) moved 0.4 A further out."""
    pos = structure.positions.copy()
    d = pos - pos[absorber]
    r = np.linalg.norm(d, axis=1)
    bonded = (r > 0) & (r < BOND)
    pos[bonded] += STRETCH * d[bonded] / r[bonded, None]
    return replace(structure, positions=pos)


def flag_rate(predictor: Predictor, structures, absorber=None, mc_samples=None) -> dict:
    """Share of the molecules flagged, and of those beyond the training range (the second reason for a flag)."""
    x = predictor.descriptor.featurize(structures, absorber=absorber)
    pred = predictor.predict_features(x, mc_samples=mc_samples)
    beyond = None if pred.extrapolation is None else float(np.mean(pred.extrapolation > EXTRAPOLATION_LIMIT))
    return {"rate": float(np.mean(~pred.trusted)), "beyond_range": beyond, "n": len(structures)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "fe-k-xanes"))
    ap.add_argument("--gpr-out", default=str(cache_dir() / "gpr-fe"))
    ap.add_argument("--skip-gpr", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data_dir = fe_data_dir()
    predictor = Predictor.from_bundle(args.model)
    cfg = predictor.bundle.config
    config = Config(descriptor=cfg["descriptor"])
    data = build_training_set(data_dir / "xyz", data_dir / "xanes_conv", config, cache=cache_dir() / "features.h5")
    test = np.isin(data.ids, cfg["holdout"]["ids"])
    assert test.sum() == len(cfg["holdout"]["ids"])
    report: dict = {"n_heldout": int(test.sum())}

    t0 = time.perf_counter()
    ens = predictor.predict_features(data.x[test])
    t_pred = time.perf_counter() - t0
    report["mlp_ensemble"] = {**score_predictions(ens, data.y[test]), "predict_seconds": t_pred,
                              "train_seconds": cfg.get("training_seconds")}
    member_mse = [float(np.mean((s - data.y[test]) ** 2)) for s in ens.samples]
    report["mlp_ensemble"]["member_mse"] = member_mse
    report["mlp_ensemble"]["gain_over_average_member"] = 1 - report["mlp_ensemble"]["mse"] / float(np.mean(member_mse))
    # the training-range check: how far do in-domain molecules go beyond the range? (the model's own validation split:
    # the training rows in data order, split as `train` split them)
    fit_x = data.x[~test]
    assert len(fit_x) == cfg["n_train"]
    _, val_index = split_validation(len(fit_x), cfg["training"]["val_fraction"], cfg["seed"])
    val_beyond = out_of_range(fit_x[val_index], predictor.bundle.x_scaler)[0]
    report["training_range"] = {"limit": EXTRAPOLATION_LIMIT, "validation_max_beyond": float(val_beyond.max()),
                                "heldout_beyond_limit": float(np.mean(ens.extrapolation > EXTRAPOLATION_LIMIT)),
                                "heldout_max_beyond": float(ens.extrapolation.max())}

    # what `xanesnet select --strategy uncertainty` would pick first: do those molecules have the largest errors?
    per_molecule = np.mean((ens.mean - data.y[test]) ** 2, axis=1)
    order = labelling_order(ens.score, ens.extrapolation)
    top = order[: max(1, len(order) // 10)]
    report["selection_top10pct"] = {"n": int(len(top)), "mse": float(per_molecule[top].mean()),
                                    "mse_ratio_to_all": float(per_molecule[top].mean() / per_molecule.mean()),
                                    "share_of_worst10pct_found": float(np.isin(top, np.argsort(per_molecule)[::-1][: len(top)]).mean())}
    if predictor.has_dropout:
        mc = predictor.predict_features(data.x[test], mc_samples=10)
        report["mlp_ensemble_mc_dropout"] = score_predictions(mc, data.y[test])

    # the trust flag in and out of the domain
    structures = [read_structure(data_dir / "xyz" / f"{i}.xyz") for i, t in zip(data.ids, test) if t]
    flags = {"heldout": flag_rate(predictor, structures)}
    flags["stretched_bonds_0.4A"] = flag_rate(predictor, [stretched(s, resolve_absorber(s)) for s in structures])
    for metal in ("Cu", "Zn"):
        folder = shared_root() / "feff_3d" / metal / "xyz"
        if folder.is_dir():
            flags[f"{metal}_through_Fe_model"] = flag_rate(predictor, [read_structure(p) for p in find_structure_files([folder])],
                                                           absorber=metal)
    report["trust_flag_rate"] = flags

    if not args.skip_gpr:
        gcfg = Config(descriptor=cfg["descriptor"], model={"kind": "gpr"}, seed=cfg["seed"])
        gcfg.training.ensemble = 1
        gcfg.training.target_transform = "pca:30"
        t0 = time.perf_counter()
        train_model(data, gcfg, args.gpr_out, holdout=0.1, progress=False)
        t_train = time.perf_counter() - t0
        gp = Predictor.from_bundle(args.gpr_out)
        t0 = time.perf_counter()
        gpred = gp.predict_features(data.x[test])
        report["gpr"] = {**score_predictions(gpred, data.y[test]), "train_seconds": t_train,
                         "predict_seconds": time.perf_counter() - t0}
        report["gpr"]["trust_flag_rate"] = {
            "heldout": flag_rate(gp, structures)["rate"],
            "stretched_bonds_0.4A": flag_rate(gp, [stretched(s, resolve_absorber(s)) for s in structures])["rate"]}

    out = ROOT / "docs"
    write_report(out / "uncertainty.json", report)
    plot_calibration(data.y[test], {"MLP ensemble": ens, **({"GP baseline": gpred} if not args.skip_gpr else {})},
                     out / "calibration.png")
    write_markdown(report, out / "uncertainty.md")
    print(json.dumps(report, indent=1))


def plot_calibration(y_true, predictions: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for label, pred in predictions.items():
        expected, observed = calibration_curve(y_true, pred.mean, pred.std)
        ax.plot(expected, observed, marker="o", ms=3, label=label)
    ax.set(xlabel="expected coverage", ylabel="observed coverage", title="Calibration on held-out Fe spectra")
    ax.legend(frameon=False)
    fig.tight_layout()
    tmp = path.with_name(".tmp." + path.name)
    fig.savefig(tmp, dpi=130, format="png")
    tmp.replace(path)


def write_markdown(r: dict, path: Path) -> None:
    e = r["mlp_ensemble"]
    lines = ["# Uncertainty of the Fe K-edge model", "",
             f"Held-out 10% of the Fe data ({r['n_heldout']} molecules), never used for training or calibration. "
             "Sigma is calibrated on the training data's validation split (a scalar factor).", "",
             "| | MSE | +-1 sigma coverage | +-2 sigma coverage | Spearman(sigma, RMSE) | in-domain flagged | train (s) | predict (s) |",
             "|---|---|---|---|---|---|---|---|"]
    rows = [("MLP ensemble", e)]
    if "mlp_ensemble_mc_dropout" in r:
        rows.append(("MLP ensemble + MC dropout (10)", r["mlp_ensemble_mc_dropout"]))
    if "gpr" in r:
        rows.append(("Gaussian process (PCA 30)", r["gpr"]))
    for name, m in rows:
        lines.append(f"| {name} | {m['mse']:.3e} | {m['coverage_1sigma']:.3f} | {m['coverage_2sigma']:.3f} | "
                     f"{m['sigma_error_spearman']:.2f} | {1 - m['trusted_fraction']:.3f} | "
                     f"{m.get('train_seconds') or float('nan'):.0f} | {m.get('predict_seconds', float('nan')):.2f} |")
    lines += ["", f"Ensemble MSE {e['mse']:.3e} vs average member {np.mean(e['member_mse']):.3e}: "
              f"{100 * e['gain_over_average_member']:.1f}% lower.", "",
              "Trust flag (MLP ensemble). A prediction is flagged when its uncertainty score is above the validation "
              "scores' 95th percentile, or when a descriptor value lies more than "
              f"{EXTRAPOLATION_LIMIT:g} training standard deviations beyond the range seen in training (the second "
              "column counts those alone).", "",
              "| inputs | flagged | beyond the training range | n |", "|---|---|---|---|"]
    for k, v in r["trust_flag_rate"].items():
        beyond = "-" if v.get("beyond_range") is None else f"{100 * v['beyond_range']:.1f}%"
        lines.append(f"| {k} | {100 * v['rate']:.1f}% | {beyond} | {v['n']} |")
    if "training_range" in r:
        t = r["training_range"]
        lines += ["", f"Training range: the model's validation molecules go at most {t['validation_max_beyond']:.1f} "
                  f"training standard deviations beyond it (the limit is {t['limit']:g}); "
                  f"{100 * t['heldout_beyond_limit']:.1f}% of the held-out molecules go beyond the limit "
                  f"(largest {t['heldout_max_beyond']:.1f})."]
    if "selection_top10pct" in r:
        t = r["selection_top10pct"]
        lines += ["", f"Selection (`xanesnet select --strategy uncertainty`): the {t['n']} held-out molecules it ranks first "
                  "(10%) have an MSE "
                  f"{t['mse_ratio_to_all']:.1f}x the held-out mean ({t['mse']:.2e}); {100 * t['share_of_worst10pct_found']:.0f}% "
                  "of them are among the 10% with the largest errors (a random pick: 1.0x and 10%). Whether picking "
                  "them pays once they are simulated and trained on: `docs/active_learning.md`."]
    if "gpr" in r:
        lines += ["", "Trust flag (GP baseline): " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["gpr"]["trust_flag_rate"].items())]
    lines += ["", "![calibration](calibration.png)", ""]
    write_text(path, "\n".join(lines))


if __name__ == "__main__":
    main()
