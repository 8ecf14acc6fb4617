"""Train the graph network on the 4,079 Fe FDMNES spectra and compare it with the shipped MLP ensemble.

Both models see the same molecules: the fixed held-out 10% (SHA-256 of the
name) is never trained or tuned on, and the rest is split by the same seed
(0) into fitting and validation parts, so the validation molecules of the
graph network are those the shipped MLP was early-stopped and calibrated on.
The graph network becomes the default only if it wins on validation.

    python scripts/train_gnn_model.py [--ensemble 3] [--epochs 80] [--out models/fe-k-xanes-gnn]
    python scripts/train_gnn_model.py --compare-only    # the comparison of the saved models only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xanesnet.config import Config
from xanesnet.experiments import ROOT, cache_dir, fe_data_dir, write_report
from xanesnet.pipeline import build_training_set, score_predictions, train_model
from xanesnet.predict import Predictor
from xanesnet.training import split_validation

MLP = ROOT / "models" / "fe-k-xanes"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--patience", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="use only the first N molecules (a quick check)")
    ap.add_argument("--out", default=str(ROOT / "models" / "fe-k-xanes-gnn"))
    ap.add_argument("--report", default=str(ROOT / "docs" / "gnn_model.json"))
    ap.add_argument("--compare-only", action="store_true", help="do not train: compare the saved models")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data_dir = fe_data_dir()
    xyz, spectra = data_dir / "xyz", data_dir / "xanes_conv"
    if args.limit:
        import tempfile

        small = Path(tempfile.mkdtemp(prefix="fe-small-"))
        for sub, src in (("xyz", xyz), ("xanes_conv", spectra)):
            (small / sub).mkdir()
            for f in sorted(src.iterdir())[: args.limit]:
                (small / sub / f.name).symlink_to(f)
        xyz, spectra = small / "xyz", small / "xanes_conv"
    config = Config.from_dict({"model": {"kind": "gnn"}, "seed": args.seed,
                               "training": {"ensemble": args.ensemble, "epochs": args.epochs, "patience": args.patience,
                                            "batch_size": args.batch_size, "lr": args.lr},
                               "provenance": {"element": "Fe", "edge": "K", "spectrum": "xanes",
                                              "reference": "FDMNES (convolved), tmQM geometries"}})
    cache = cache_dir() / "features.h5"
    data = build_training_set(xyz, spectra, config, cache=cache, progress=True)
    if not args.compare_only:
        train_model(data, config, args.out, holdout=0.1, progress=True)
    saved = json.loads((Path(args.out) / "config.json").read_text())
    seconds = saved["training_seconds"]

    # the same validation molecules for both models: the fit part's split with the same seed
    test = np.isin(data.ids, saved["holdout"]["ids"])
    fit_ids = [i for i, t in zip(data.ids, test) if not t]
    _, val = split_validation(len(fit_ids), saved["training"]["val_fraction"], saved["seed"])
    val_ids = [fit_ids[k] for k in val]
    report = {"settings": {k: saved[k] for k in ("descriptor", "model", "training", "seed")}, "n_fit": len(fit_ids), "n_validation": len(val_ids), "n_test": int(test.sum()),
              "gnn": {"train_seconds": seconds, "ensemble": len(saved["history"]),
                      "epochs_run": [h["epochs_run"] for h in saved["history"]],
                      "model_bytes": sum(f.stat().st_size for f in Path(args.out).iterdir())}}
    models = {"gnn": Path(args.out)}
    mlp_config = json.loads((MLP / "config.json").read_text())
    if not args.limit and mlp_config.get("seed") == saved["seed"] and mlp_config["n_train"] == len(fit_ids):
        models["mlp"] = MLP
        report["mlp"] = {"train_seconds": mlp_config["training_seconds"], "ensemble": len(mlp_config["history"]),
                         "model_bytes": sum(f.stat().st_size for f in MLP.iterdir())}
    for name, path in models.items():
        predictor = Predictor.from_bundle(path)
        cfg = Config(descriptor=predictor.bundle.config["descriptor"], model=predictor.bundle.config["model"])
        feats = data if name == "gnn" else build_training_set(xyz, spectra, cfg, cache=cache, progress=True)
        for split, ids in (("validation", val_ids), ("test", saved["holdout"]["ids"])):
            keep = np.isin(feats.ids, ids)
            pred = predictor.predict_features(feats.x[keep], ids=[i for i, k in zip(feats.ids, keep) if k])
            report[name][split] = score_predictions(pred, feats.y[keep])
        print(name, json.dumps({s: report[name][s]["mse"] for s in ("validation", "test")}), flush=True)
    if "mlp" in report:
        report["gnn_wins_on_validation"] = report["gnn"]["validation"]["mse"] < report["mlp"]["validation"]["mse"]
    write_report(args.report, report)
    print(f"wrote {args.report}")
    print(markdown(report))


def sci(v: float) -> str:
    mantissa, exponent = f"{v:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def markdown(report: dict) -> str:
    """The comparison table of docs/model_selection.md."""
    rows = ["| model | validation MSE | held-out MSE | main-peak error mean / median (eV) | coverage 1 / 2 sigma | "
            "trusted | train time | size |", "|---|---|---|---|---|---|---|---|"]
    for name, label in (("mlp", "MLP ensemble (shipped `fe-k-xanes`)"), ("gnn", "graph network (`fe-k-xanes-gnn`)")):
        if name not in report:
            continue
        r, t = report[name], report[name]["test"]
        rows.append(f"| {label}, {r['ensemble']} members | {sci(r['validation']['mse'])} | {sci(t['mse'])} | "
                    f"{t['peak_position_error_ev_mean']:.2f} / {t['peak_position_error_ev_median']:.2f} | "
                    f"{t['coverage_1sigma']:.3f} / {t['coverage_2sigma']:.3f} | {t['trusted_fraction']:.3f} | "
                    f"{r['train_seconds'] / 60:.0f} min | {r['model_bytes'] / 1e6:.1f} MB |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
