"""How much of the XES models' error is FEFF's Fermi level? An oracle run behind the Results of docs/feff_models.md.

FEFF cuts the valence-to-core XES off at its Fermi level E_F, which scatters
by about 1 eV between complexes of one metal and which the structure
explains poorly (``e_fermi`` in docs/feff_target_probe.json). Here the shipped
XES network's settings (one member per fold, the comparison's 5 folds on the
molecules outside the held-out split) are cross-validated twice: as shipped,
and with FEFF's own E_F of each molecule (relative to its metal's median) as
one more input. E_F is not known when predicting from a structure, so the
second run is an oracle: the gap between the two is the part of the error
that only predicting where FEFF puts its Fermi level could remove.
Writes docs/feff_xes_fermi.json, stamped with the commit.

    python scripts/xes_fermi_limit.py [--metals Fe Cu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from compare_feff_models import FOLDS, Score, one_member, predict_mean
from train_feff_models import (ROOT, UNIVERSAL_DESCRIPTOR, UNIVERSAL_INNER, UNIVERSAL_MODEL, UNIVERSAL_TRAINING, commit,
                               load_data, make_config, with_element)

from xanesnet.data.dataset import heldout_mask
from xanesnet.data.feff import load_feff
from xanesnet.experiments import cv_folds
from xanesnet.io.structures import FIRST_ROW_TM


def metal_data(metal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features (with the one-hot), XES, E_F relative to the metal's median, and folds, outside the held-out split."""
    feff = load_feff(metal, "xes")
    data, _ = load_data(metal, "xes", make_config(metal, "xes", descriptor=UNIVERSAL_INNER["xes"]), feff=feff)
    keep = ~heldout_mask(data.ids)
    ids = [i for i, k in zip(data.ids, keep) if k]
    fermi = {s.structure.name: s.spectrum.meta["e_fermi"] for _, s in feff.molecules()}
    e_f = np.array([fermi[i] for i in ids])
    return with_element(data.x[keep], metal), data.y[keep], e_f - np.median(e_f), cv_folds(ids, FOLDS)


def cross_validate(sets: dict, with_fermi: bool, seed: int) -> Score:
    from xanesnet.training import train

    metals = list(sets)
    config = make_config(metals[0], "xes", seed=seed, descriptor=UNIVERSAL_DESCRIPTOR["xes"],
                         model=UNIVERSAL_MODEL["xes"], training=one_member(UNIVERSAL_TRAINING))

    def inputs(m: str, rows: np.ndarray) -> np.ndarray:
        x, _, e_f, _ = sets[m]
        return np.hstack([x[rows], e_f[rows, None]]) if with_fermi else x[rows]

    score = Score()
    points = np.arange(sets[metals[0]][1].shape[1], dtype=float)
    for k in range(FOLDS):
        fits = {m: np.flatnonzero(sets[m][3] != k) for m in metals}
        trained = train(np.vstack([inputs(m, fits[m]) for m in metals]),
                        np.vstack([sets[m][1][fits[m]] for m in metals]), config, progress=False)
        for m in metals:
            test = np.flatnonzero(sets[m][3] == k)
            score.add(m, predict_mean(trained, inputs(m, test), points), sets[m][1][test], sets[m][1][fits[m]])
    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "feff_xes_fermi.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    sets = {m: metal_data(m) for m in args.metals}
    scores = {name: cross_validate(sets, with_fermi, args.seed) for name, with_fermi in
              (("structure", False), ("structure_and_fermi", True))}
    rows = [{"metal": m, "n": int(len(sets[m][1])), "e_fermi_std_ev": float(sets[m][2].std()),
             **{f"{name}_ratio": s.ratio(m) for name, s in scores.items()}} for m in args.metals]
    for r in rows:
        print(f"{r['metal']:2s} n {r['n']}: E_F std {r['e_fermi_std_ev']:.2f} eV, CV ratio {r['structure_ratio']:.3f} "
              f"-> {r['structure_and_fermi_ratio']:.3f} with FEFF's E_F", flush=True)
    report = {"commit": commit(), "seed": args.seed, "members_per_fold": 1, "folds": FOLDS,
              "seconds": time.perf_counter() - start, "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
