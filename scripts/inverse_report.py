"""Train the shipped Fe inverse model and measure ``xanesnet invert`` and ``xanesnet match`` on the held-out Fe 10%.

Writes docs/inverse.json (stamped with the commit) and the tables of docs/inverse.md between its
``<!-- tables -->`` markers. The held-out 10% (SHA-256 of the name) is never trained on and no setting is
chosen on it: the match settings are compared on the forward model's own validation split.

    python scripts/inverse_report.py --train-only [--ensemble 8] [--seed 0] [--threads 2] [--data ARCHIVE]
    python scripts/inverse_report.py            # after committing the model: the report, stamped with that commit
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from xanesnet.config import Config
from xanesnet.data.dataset import heldout_mask
from xanesnet.experiments import ROOT, cache_dir, fe_data_dir, git_commit
from xanesnet.inverse import GROUPS, INVERSE_MODEL_SETTINGS, InverseInput, InversePredictor, build_inverse_set, train_inverse
from xanesnet.io.spectra import Spectrum, read_spectrum
from xanesnet.match import rank_candidates

INVERSE_MODEL = ROOT / "models" / "fe-k-xanes-inverse"
FORWARD_MODEL = ROOT / "models" / "fe-k-xanes"
DOC = ROOT / "docs" / "inverse.md"
SHIFTS = [0.0, 1.0, 2.0, 5.0]  # uniform random shifts in +-this many eV
NOISE = 0.02  # Gaussian noise, standard deviation = this times the spectrum's maximum


def inverse_config(ensemble: int, seed: int) -> Config:
    config = Config(model=dict(INVERSE_MODEL_SETTINGS), seed=seed)
    config.training.ensemble = ensemble
    config.training.epochs = 400
    config.training.patience = 40
    return config


def perturbed(spectra: list[Spectrum], shift: float, noise: float, seed: int, scale: tuple[float, float] | None = None
              ) -> list[Spectrum]:
    """Copies shifted by a uniform random amount in +-shift eV, with noise (times the max) and optionally scaled."""
    rng = np.random.default_rng(seed)
    out = []
    for s in spectra:
        d = rng.uniform(-shift, shift)
        y = s.intensity + rng.normal(0.0, noise * s.intensity.max(), len(s.intensity)) if noise else s.intensity
        if scale is not None:
            y = y * rng.uniform(*scale)
        out.append(Spectrum(name=s.name, energy=s.energy + d, intensity=y, source=s.source))
    return out


def invert_metrics(predictor: InversePredictor, spectra: list[Spectrum], cn: np.ndarray, r1: np.ndarray,
                   donors: np.ndarray, groups: dict[str, np.ndarray] | None = None) -> dict:
    """Accuracy of ``invert`` on ``spectra``; ``groups`` (name -> mask over the spectra) adds the CN accuracy per group."""
    from xanesnet.errors import XanesnetError

    ok, refused = [], 0
    for k, s in enumerate(spectra):
        try:
            predictor.inputs.read(s)
            ok.append(k)
        except XanesnetError:
            refused += 1
    ok = np.array(ok)
    res = predictor.predict([spectra[k] for k in ok])
    err = np.abs(res.r1 - r1[ok])
    has = np.isfinite(err)
    z = err[has] / res.r1_std[has]
    return {"n": int(len(spectra)), "refused_not_covered": refused,
            "cn_exact": float(np.mean(res.cn == cn[ok])),
            "cn_exact_counting_refused_as_wrong": float(np.sum(res.cn == cn[ok]) / len(spectra)),
            "cn_within_1": float(np.mean(np.abs(res.cn - cn[ok]) <= 1)),
            "cn_prob_mean": float(np.mean(res.cn_prob)),
            "r1_mae": float(np.mean(err[has])), "r1_coverage_1sigma": float(np.mean(z <= 1)),
            "r1_coverage_2sigma": float(np.mean(z <= 2)), "r1_std_median": float(np.median(res.r1_std)),
            "donors_exact": float(np.mean(np.all(np.round(res.donors) == donors[ok], axis=1))),
            "donors_mae": {g: float(np.mean(np.abs(res.donors[:, j] - donors[ok, j]))) for j, g in enumerate(GROUPS)},
            "trusted_fraction": float(np.mean(res.trusted)),
            **({"cn_exact_by_group": {name: {"n": int(mask[ok].sum()), "cn_exact": float(np.mean((res.cn == cn[ok])[mask[ok]]))}
                                      for name, mask in groups.items()}} if groups else {})}


#: Held-out molecules whose CN is hard to read from a spectrum: an atom within this of the first-shell cutoff factor.
NEAR_CUTOFF = 0.05


def cn_groups(targets) -> dict[str, np.ndarray]:
    """Masks of the molecules the CN accuracy is broken down by (``targets`` a :class:`~xanesnet.inverse.ShellTargets`)."""
    from xanesnet.analysis.shell import FIRST_SHELL_FACTOR

    near = np.any(np.abs(targets.ratios - FIRST_SHELL_FACTOR) < NEAR_CUTOFF, axis=1)
    hydrogen = targets.donors[:, GROUPS.index("other")] > 0  # H is the common 'other' donor (hydrides, agostic C-H)
    return {"all": np.ones(len(near), bool), "atom_near_cutoff": near, "other_donor": hydrogen,
            "neither": ~near & ~hydrogen}


def match_accuracy(targets: list[Spectrum], pools: list[np.ndarray], truth: list[int], energy: np.ndarray,
                   mean: np.ndarray, std: np.ndarray, *, fit: bool = True, **kw) -> dict:
    """Share of targets whose own structure is ranked first; ``fit=False``: nearest prediction by RMSE, no shift or scale."""
    top1, weight_true, weight_top, ranks = [], [], [], []
    for spec, pool, t in zip(targets, pools, truth):
        if fit:
            r = rank_candidates(spec, energy, mean[pool], std[pool], [str(i) for i in pool], **kw)
            pos = int(np.flatnonzero(pool[r.order] == t)[0])
            weight_true.append(float(r.weight[np.flatnonzero(pool == t)[0]]))
            weight_top.append(float(r.weight[r.order[0]]))
        else:
            y = np.interp(energy, spec.energy, spec.intensity)
            d = np.sqrt(np.mean((mean[pool] - y) ** 2, axis=1))
            pos = int(np.flatnonzero(pool[np.argsort(d, kind="stable")] == t)[0])
        ranks.append(pos + 1)
        top1.append(pos == 0)
    out = {"n": len(targets), "top1": float(np.mean(top1)), "top3": float(np.mean(np.array(ranks) <= 3)),
           "mean_rank": float(np.mean(ranks))}
    if weight_true:
        out.update(weight_of_truth_mean=float(np.mean(weight_true)), weight_of_top_mean=float(np.mean(weight_top)))
    return out


def random_pools(targets: np.ndarray, universe: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pools = []
    for t in targets:
        others = universe[universe != t]
        pools.append(np.concatenate([[t], rng.choice(others, size=min(n - 1, len(others)), replace=False)]))
    return pools


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", action="store_true", help="train and save models/fe-k-xanes-inverse first")
    ap.add_argument("--train-only", action="store_true", help="train and save models/fe-k-xanes-inverse, then stop")
    ap.add_argument("--ensemble", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report", default=str(ROOT / "docs" / "inverse.json"))
    ap.add_argument("--data", help="the Fe data archive (default ../shared/data/fe_k_fdmnes_train.tar.gz)")
    ap.add_argument("--render", action="store_true", help="only rewrite the tables of docs/inverse.md from the JSON")
    args = ap.parse_args()
    if args.render:
        write_tables(json.loads(Path(args.report).read_text()))
        return

    import torch

    torch.set_num_threads(args.threads)
    data_dir = fe_data_dir(args.data)
    inputs = InverseInput()
    data = build_inverse_set(data_dir / "xyz", data_dir / "xanes_conv", inputs, progress=True)
    if args.train or args.train_only:
        saved = train_inverse(data, inputs, INVERSE_MODEL, config=inverse_config(args.ensemble, args.seed), holdout=0.1,
                              metadata={"element": "Fe", "edge": "K", "spectrum": "xanes",
                                        "reference": "FDMNES (convolved), tmQM geometries"}, weights_dtype="float16")
        print(f"trained in {saved['training_seconds']:.0f} s; weights stored as {saved['weights_dtype']}", flush=True)
        if args.train_only:
            return
    predictor = InversePredictor.from_bundle(INVERSE_MODEL)
    ids = np.array(data.ids)
    test = heldout_mask(data.ids)
    assert set(ids[test]) == set(predictor.config["holdout"]["ids"])
    t = data.targets
    spectra = [read_spectrum(data_dir / "xanes_conv" / f"{i}.txt") for i in ids[test]]
    report: dict = {"commit": git_commit(),
                    "n_train": int((~test).sum()), "n_heldout": int(test.sum())}
    train_r1 = t.r1[~test][np.isfinite(t.r1[~test])]
    common_cn = Counter(t.cn[~test]).most_common(1)[0][0]
    has = np.isfinite(t.r1[test])
    report["baselines"] = {"most_common_cn": int(common_cn), "most_common_cn_exact": float(np.mean(t.cn[test] == common_cn)),
                           "training_mean_r1": float(train_r1.mean()),
                           "training_mean_r1_mae": float(np.mean(np.abs(t.r1[test][has] - train_r1.mean())))}
    report["cn_distribution_train"] = {int(k): int(v) for k, v in sorted(Counter(t.cn[~test]).items())}
    invert = {}
    for shift in SHIFTS:
        invert[f"shift_{shift:g}"] = invert_metrics(predictor, perturbed(spectra, shift, 0.0, seed=1), t.cn[test], t.r1[test],
                                                    t.donors[test], groups=cn_groups(t.take(np.flatnonzero(test)))
                                                    if shift == 2.0 else None)
    invert["shift_2_noise"] = invert_metrics(predictor, perturbed(spectra, 2.0, NOISE, seed=2), t.cn[test], t.r1[test],
                                             t.donors[test])
    report["invert"] = invert
    print(json.dumps(invert, indent=1), flush=True)

    # would the ~250 FEFF spectra per metal support an inverse model? the same recipe on 250 Fe training spectra
    import tempfile

    from xanesnet.inverse import InverseData

    pick = np.sort(np.random.default_rng(args.seed).choice(np.flatnonzero(~test), 250, replace=False))
    small = InverseData(ids=[data.ids[k] for k in pick], x=data.x[pick], e0=data.e0[pick],
                        targets=t.take(pick))
    with tempfile.TemporaryDirectory() as tmp:
        train_inverse(small, inputs, Path(tmp) / "m", config=inverse_config(args.ensemble, args.seed), progress=False)
        report["small_250"] = invert_metrics(InversePredictor.from_bundle(Path(tmp) / "m"), perturbed(spectra, 2.0, 0.0, seed=1),
                                             t.cn[test], t.r1[test], t.donors[test])
    print("250 training spectra:", json.dumps(report["small_250"]), flush=True)

    # match: forward predictions of every molecule
    from xanesnet.data.dataset import featurize_files
    from xanesnet.predict import Predictor

    forward = Predictor.from_bundle(FORWARD_MODEL)
    feats = featurize_files([data_dir / "xyz" / f"{i}.xyz" for i in ids], forward.descriptor,
                            cache=cache_dir() / "features.h5", progress=True)
    pred = forward.predict_features(feats.x)
    energy = forward.energy
    all_spectra = {i: s for i, s in zip(ids[test], spectra)}
    # the forward model's validation split (not fitted, only early stopping and calibration): for choosing settings
    from xanesnet.training import split_validation

    fit_idx = np.flatnonzero(~test)
    val = fit_idx[split_validation(len(fit_idx), forward.bundle.config["training"]["val_fraction"],
                                   forward.bundle.config["seed"])[1]]
    for i in ids[val]:
        all_spectra[i] = read_spectrum(data_dir / "xanes_conv" / f"{i}.txt")

    def targets_for(idx, shift, noise=0.0, seed=3, scale=None):
        return perturbed([all_spectra[i] for i in ids[idx]], shift, noise, seed, scale)

    choice = {}
    val_pools = random_pools(val, val, 50, seed=4)
    val_targets = targets_for(val, 2.0)
    for floor in (0.005, 0.01, 0.02, 0.05):
        for corr in (2.0, 5.0, 10.0):
            choice[f"floor_{floor:g}_corr_{corr:g}"] = match_accuracy(val_targets, val_pools, list(val), energy, pred.mean,
                                                                    pred.std, floor=floor, correlation_ev=corr)
    report["match_validation_choice"] = choice
    print(json.dumps(choice, indent=1), flush=True)

    held = np.flatnonzero(test)
    match = {}
    for n in (10, 50, 250):
        pools = random_pools(held, held, n, seed=5 + n)
        match[f"n{n}_shift_2"] = match_accuracy(targets_for(held, 2.0), pools, list(held), energy, pred.mean, pred.std)
        if n == 50:
            match["n50_shift_0"] = match_accuracy(targets_for(held, 0.0), pools, list(held), energy, pred.mean, pred.std)
            match["n50_shift_5"] = match_accuracy(targets_for(held, 5.0), pools, list(held), energy, pred.mean, pred.std)
            match["n50_shift_2_noise"] = match_accuracy(targets_for(held, 2.0, NOISE), pools, list(held), energy, pred.mean,
                                                        pred.std)
            match["n50_shift_2_scaled"] = match_accuracy(targets_for(held, 2.0, scale=(0.5, 3.0)), pools, list(held), energy,
                                                         pred.mean, pred.std)
            match["n50_nearest_no_fit_shift_0"] = match_accuracy(targets_for(held, 0.0), pools, list(held), energy,
                                                                 pred.mean, pred.std, fit=False)
            match["n50_nearest_no_fit_shift_2"] = match_accuracy(targets_for(held, 2.0), pools, list(held), energy,
                                                                 pred.mean, pred.std, fit=False)
    # look-alikes: the same donor counts in every group (all Fe), drawn from all 4,079 molecules
    key = [tuple(row) for row in t.donors.astype(int)]
    rng = np.random.default_rng(9)
    la_targets, la_pools, sizes = [], [], []
    everyone = np.arange(len(ids))
    for h in held:
        same = everyone[[key[j] == key[h] and j != h for j in everyone]]
        if len(same) == 0:
            continue
        pick = rng.choice(same, size=min(49, len(same)), replace=False)
        la_targets.append(h)
        la_pools.append(np.concatenate([[h], pick]))
        sizes.append(len(pick) + 1)
    match["lookalike_shift_2"] = {**match_accuracy(targets_for(np.array(la_targets), 2.0), la_pools, la_targets, energy,
                                                   pred.mean, pred.std),
                                  "candidates_median": float(np.median(sizes)), "no_lookalike": int(len(held) - len(la_targets))}
    report["match"] = match
    print(json.dumps(match, indent=1), flush=True)
    Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    write_tables(report)
    print(f"wrote {args.report} and the tables of {DOC}")


def render_tables(report: dict) -> str:
    """The markdown tables of docs/inverse.md, from the report (the test re-renders and compares them)."""
    b, inv, m = report["baselines"], report["invert"], report["match"]
    lines = [f"Held-out: {report['n_heldout']} molecules; trained on {report['n_train']}; commit `{report['commit'][:10]}`.", "",
             "| input | CN exact | CN within 1 | r1 MAE (A) | r1 +-1 sigma | r1 +-2 sigma | donors exact | refused |",
             "|---|---|---|---|---|---|---|---|"]
    labels = {"shift_0": "as computed", "shift_1": "shift +-1 eV", "shift_2": "shift +-2 eV", "shift_5": "shift +-5 eV",
              "shift_2_noise": "shift +-2 eV, 2% noise"}
    for key, label in labels.items():
        r = inv[key]
        lines.append(f"| {label} | {r['cn_exact']:.3f} | {r['cn_within_1']:.3f} | {r['r1_mae']:.4f} | "
                     f"{r['r1_coverage_1sigma']:.3f} | {r['r1_coverage_2sigma']:.3f} | {r['donors_exact']:.3f} | "
                     f"{r['refused_not_covered']} |")
    lines.append(f"| baseline: most common CN ({b['most_common_cn']}) / training-mean r1 ({b['training_mean_r1']:.3f} A) | "
                 f"{b['most_common_cn_exact']:.3f} | | {b['training_mean_r1_mae']:.4f} | | | | |")
    r = report["small_250"]
    lines.append(f"| trained on 250 spectra only, shift +-2 eV | {r['cn_exact']:.3f} | {r['cn_within_1']:.3f} | "
                 f"{r['r1_mae']:.4f} | {r['r1_coverage_1sigma']:.3f} | {r['r1_coverage_2sigma']:.3f} | "
                 f"{r['donors_exact']:.3f} | {r['refused_not_covered']} |")
    by = inv["shift_2"]["cn_exact_by_group"]
    glabels = {"all": "all", "atom_near_cutoff": f"an atom within {NEAR_CUTOFF:g} of the cutoff factor 1.2",
               "other_donor": "an 'other' donor (mostly H) in the first shell", "neither": "neither"}
    lines += ["", "CN exact by kind of molecule (shift +-2 eV):", "", "| held-out molecules with | n | CN exact |", "|---|---|---|"]
    lines += [f"| {label} | {by[key]['n']} | {by[key]['cn_exact']:.3f} |" for key, label in glabels.items()]
    lines += ["", "| match condition | candidates | top-1 | top-3 | mean rank | mean weight of the truth |", "|---|---|---|---|---|---|"]
    mlabels = {"n10_shift_2": ("shift +-2 eV", "10"), "n50_shift_2": ("shift +-2 eV", "50"),
               "n250_shift_2": ("shift +-2 eV", "250"), "n50_shift_0": ("no shift", "50"),
               "n50_shift_5": ("shift +-5 eV", "50"), "n50_shift_2_noise": ("shift +-2 eV, 2% noise", "50"),
               "n50_shift_2_scaled": ("shift +-2 eV, intensity x0.5-3", "50"),
               "lookalike_shift_2": ("look-alikes (same donor set), shift +-2 eV",
                                     f"{m['lookalike_shift_2']['candidates_median']:g} (median)"),
               "n50_nearest_no_fit_shift_0": ("nearest prediction (RMSE, no fit), no shift", "50"),
               "n50_nearest_no_fit_shift_2": ("nearest prediction (RMSE, no fit), shift +-2 eV", "50")}
    for key, (label, n) in mlabels.items():
        r = m[key]
        w = f"{r['weight_of_truth_mean']:.3f}" if "weight_of_truth_mean" in r else ""
        lines.append(f"| {label} | {n} | {r['top1']:.3f} | {r['top3']:.3f} | {r['mean_rank']:.2f} | {w} |")
    lines += ["", "Match settings on the forward model's validation split (50 candidates, shift +-2 eV; chosen: floor 0.02, "
              "5 eV):", "", "| mismatch floor | eV per independent point | top-1 | mean weight of the best | "
              "mean weight of the truth |", "|---|---|---|---|---|"]
    for key, r in report["match_validation_choice"].items():
        _, floor, _, corr = key.split("_")
        lines.append(f"| {floor} | {corr} | {r['top1']:.3f} | {r['weight_of_top_mean']:.3f} | {r['weight_of_truth_mean']:.3f} |")
    return "\n".join(lines)


def write_tables(report: dict) -> None:
    text = DOC.read_text()
    start, end = "<!-- tables -->", "<!-- /tables -->"
    if start not in text or end not in text:
        sys.exit(f"{DOC} needs the markers {start} and {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{render_tables(report)}\n{end}{tail}")


if __name__ == "__main__":
    main()
