"""Choose the network of the FEFF models by 5-fold cross-validation inside the non-held-out data.

For every metal and spectrum the held-out 10% (SHA-256 of the name) is removed
first and never looked at. The rest is split into 5 folds by name
(``xanesnet.experiments.cv_folds``; docs/feff_model_selection.md was written
with an earlier seeded split of the same kind, so a re-run differs by the fold
noise); each
candidate is trained as one network (early stopping on its own validation
share of the fold's training part) and scored on the left-out fold against
the mean spectrum of the fold's training part. Per candidate the table gives
the mean over metals of MSE(model) / MSE(mean spectrum), separately for XANES
and XES, and the size of a 5-member ensemble. Writes docs/feff_model_selection.md.

    python scripts/select_feff_models.py [--metals Fe Cu] [--candidates 64x2,64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from train_feff_models import DESCRIPTOR, EXTRA_DIR, MODEL, ROOT, SPECTRA, TRAINING, cross_validate, load_data, make_config

from xanesnet.data.dataset import heldout_mask
from xanesnet.descriptors import WACSF
from xanesnet.io.structures import FIRST_ROW_TM


def mlp(hidden: list[int], dropout: float = 0.1) -> dict:
    return {"kind": "mlp", "hidden": hidden, "activation": "silu", "dropout": dropout}


#: "plain-r1": the plain wACSF (32 G2, 64 G4) on 1-6 A instead of 0-6 A. On 0-6 A the Gaussians below ~1.2 A
#: are empty except for the odd molecule with a very short contact (a hydride), so after standardisation that
#: molecule's features are hundreds of standard deviations out and an MLP extrapolates wildly (CV ratios of
#: 3-20 on Fe and Ni XANES in exploratory runs); a GP's kernel just decays there.
PLAIN_R1 = WACSF(r_min=1.0).to_dict()

#: name -> (descriptor preset or settings, model settings, changes to the training settings)
CANDIDATES: dict[str, tuple[str | dict, dict, dict]] = {
    "plain/gpr": ("plain", {"kind": "gpr"}, {}),
    "plain-r1/gpr": (PLAIN_R1, {"kind": "gpr"}, {}),
    "xanesnet/64x2/drop0.3": ("xanesnet", mlp([64, 64], 0.3), {}),
    "plain-r1/64x2": (PLAIN_R1, mlp([64, 64]), {}),
    "plain-r1/64x2/drop0.3": (PLAIN_R1, mlp([64, 64], 0.3), {}),
    "plain-r1/64x2/drop0.3/pca16": (PLAIN_R1, mlp([64, 64], 0.3), {"target_transform": "pca:16"}),
}


def model_bytes(model: dict, n_in: int, n_out: int, target_transform: str, n_train: int) -> int:
    """Size of the saved weights: 5 float32 MLPs, or one GP's float64 buffers (inputs, weights, Cholesky factor)."""
    if model["kind"] == "gpr":
        return 8 * n_train * (n_in + n_out + n_train)
    if target_transform.startswith("pca:"):
        n_out = int(target_transform.split(":")[1])
    widths = [n_in, *model["hidden"], n_out]
    return 5 * 4 * sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--spectra", nargs="+", default=list(SPECTRA))
    ap.add_argument("--candidates", help="comma-separated subset of " + ", ".join(CANDIDATES))
    ap.add_argument("--extra-dir", type=Path, default=EXTRA_DIR)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "feff_model_selection.md")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    chosen = {k: v for k, v in CANDIDATES.items() if not args.candidates or k in args.candidates.split(",")}
    results: dict[str, dict[str, dict]] = {name: {} for name in chosen}
    sizes: dict[str, list[int]] = {name: [] for name in chosen}
    for spectrum in args.spectra:
        for metal in args.metals:
            loaded = {}
            for name, (descriptor, model, changes) in chosen.items():
                key = json.dumps(descriptor, sort_keys=True)
                if key not in loaded:
                    data, _ = load_data(metal, spectrum, make_config(metal, spectrum, descriptor=descriptor),
                                        extra_dir=args.extra_dir)
                    keep = ~heldout_mask(data.ids)  # the held-out test is never used here
                    loaded[key] = data.x[keep], data.y[keep], data.energy, [i for i, k in zip(data.ids, keep) if k]
                x, y, energy, ids = loaded[key]
                config = make_config(metal, spectrum, descriptor=descriptor, model=model,
                                     training={**TRAINING, **changes, "ensemble": 1})
                start = time.perf_counter()
                r = cross_validate(x, y, energy, config, ids)
                r["seconds"] = time.perf_counter() - start
                results[name][f"{metal}-{spectrum}"] = r
                sizes[name].append(model_bytes(model, x.shape[1], y.shape[1], config.training.target_transform, len(x)))
                print(f"{metal:2s} {spectrum:5s} n={len(x):3d} {name:14s} CV MSE {r['mse']:.2e} / mean {r['mean_mse']:.2e} "
                      f"= {r['ratio']:.3f}; peak {r['peak_ev_mean']:.2f} eV; {r['seconds']:.0f} s", flush=True)
    lines = ["# Network choice for the FEFF models (5-fold cross-validation, held-out 10% excluded)", "",
             f"Data: feff_3d plus data/feff_extra at the time of the run. Candidates are named descriptor (plain-r1 = plain on 1-6 A) / "
             f"hidden widths / changes; MLPs use SiLU, dropout 0.1 (0.3 where named), Adam, training settings {json.dumps({k: v for k, v in TRAINING.items() if k != 'ensemble'})} unless "
             f"changed, one network per fold. Ratio = CV MSE / CV MSE of the fold-training mean spectrum "
             f"(mean over metals; below 1 is better). Size: weights of a 5-member MLP ensemble (float32) or of "
             f"one GP (float64), averaged over the models.", "",
             "| candidate | XANES ratio | XES ratio | XANES peak error (eV) | XES peak error (eV) | size / model (kB) |",
             "|---|---|---|---|---|---|"]
    for name, per in results.items():
        cells = []
        for key in ("ratio", "peak_ev_mean"):
            for spectrum in ("xanes", "xes"):
                vals = [r[key] for k, r in per.items() if k.endswith("-" + spectrum)]
                cells.append(f"{np.mean(vals):.3f}" if vals else "-")
        size = np.mean(sizes[name]) / 1e3
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {size:.0f} |")
    lines += ["", f"Shipped: wACSF on {DESCRIPTOR['r_min']:g}-{DESCRIPTOR['r_max']:g} A ({DESCRIPTOR['n_g2']} G2, {DESCRIPTOR['n_g4']} G4), "
              f"`{json.dumps(MODEL)}` with `{json.dumps(TRAINING)}` (see `scripts/train_feff_models.py`).", "",
              "Per metal:", "", "```json", json.dumps(results, indent=1), "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
