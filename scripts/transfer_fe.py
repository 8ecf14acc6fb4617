"""Transfer from FEFF to FDMNES: pretrain on FEFF10 K-edge XANES, fine-tune on the FDMNES Fe set; learning curves.

Pretraining data: every FEFF10 XANES we have of Fe (arm ``finetuned``) or of
all nine metals Ti-Zn (arm ``finetuned_all``): ``../shared/data/feff_3d/<M>``,
``../shared/data/feff_3d_more/<M>`` and the committed ``data/feff_extra/<M>.npz``,
with the 1 eV Lorentzian of the shipped FEFF models, each metal moved onto the
FDMNES Fe energy scale by one shift (the median FDMNES Fe E0 minus that metal's
median FEFF E0, so the chemical shifts between molecules are kept) and put on
the FDMNES grid (7097-7172 eV, 226 points; FEFF starts about 18 eV below its
edge, FDMNES 30 eV: below its first point a FEFF spectrum's first value is
repeated, the flat pre-edge). The descriptor does not name the absorbing
element, so the all-metal pretraining learns a metal-averaged map. Complexes
whose CSD refcode is also in the FDMNES validation split or held-out 10% are
left out of pretraining.

Curves: the non-held-out FDMNES spectra are split once (seed 12345) into a
validation split (``--val-fraction``) that scores every run and a pool; each
seed draws nested training subsets of ``--sizes`` from the pool. Per size and
seed, one single MLP (the shipped model's descriptor, architecture and training
settings, epochs capped at ``--epochs``) is trained from random weights
("scratch") and one from the FEFF-pretrained weights of the same seed
per pretraining source; both refit the scalers on their own data, so they differ only
in the starting weights. The fixed held-out 10% is never used here.

Writes ``docs/transfer.json`` after every run (re-running skips finished runs)
and the tables of ``docs/transfer.md`` (below its marker line; ``--markdown-only``
rewrites them from the JSON alone); ``--pretrain-out DIR`` also saves an ensemble of
``--ensemble`` FEFF-pretrained members (seeds 0..) for ``xanesnet train --init-from``.

    python scripts/transfer_fe.py [--sizes 250 500 1000 2000 0] [--seeds 0 1 2] [--pretrain-out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from xanesnet.experiments import FE_ARCHIVE, ROOT, cache_dir, fe_data_dir, fixed_splits, git_commit, shared_root

from xanesnet.analysis.metrics import evaluate_spectra
from xanesnet.analysis.transfer import SOURCES, write_markdown
from xanesnet.config import Config
from xanesnet.data.feff import load_feff
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.io.structures import FIRST_ROW_TM
from xanesnet.pipeline import TrainingSet, build_training_set
from xanesnet.spectra import process
from xanesnet.spectra.edge import edge_energy

SHARED = shared_root()
ARCHIVE = SHARED / FE_ARCHIVE

#: the broadening of the shipped FEFF XANES models (scripts/train_feff_models.py)
FEFF_BROADENING = {"kind": "lorentzian", "width": 1.0}
SPLIT_SEED = 12345


def refcode(name: str) -> str:
    """The CSD refcode of a molecule name (FDMNES names are ``REFCODE_formula``)."""
    return name.split("_")[0].upper()


def feff_xanes(metal: str, config: Config, shared: Path = SHARED) -> tuple[list[str], np.ndarray, list]:
    """Names, descriptor rows and broadened (unshifted) spectra of every FEFF10 XANES of one metal."""
    descriptor = descriptor_from_dict(config.descriptor)
    names, rows, spectra = [], [], []
    for _, sim in load_feff(metal, "xanes", shared=shared).molecules():
        names.append(sim.structure.name)
        rows.append(descriptor.create(sim.structure, sim.absorber))
        spectra.append(process(sim.spectrum, {"broadening": FEFF_BROADENING}))
    return names, np.vstack(rows), spectra


def on_fdmnes_grid(spectra: list, energy: np.ndarray, shift: float) -> np.ndarray:
    """FEFF spectra shifted by ``shift`` eV and interpolated onto the FDMNES grid (constant beyond their ends)."""
    return np.vstack([np.interp(energy, s.energy + shift, s.intensity) for s in spectra])


def single_config(seed: int, epochs: int) -> Config:
    config = Config(seed=seed)
    config.training.ensemble = 1
    config.training.epochs = epochs
    return config


def score(trained, x: np.ndarray, y: np.ndarray, energy: np.ndarray) -> dict:
    import torch

    net = trained.members[0]
    with torch.no_grad():
        z = net(torch.as_tensor(trained.x_scaler.transform(x), dtype=torch.float32)).numpy()
    pred = trained.y_transform.inverse_transform(z.astype(float))
    m = evaluate_spectra(energy, y, pred)
    return {"mse": m["mse"], "peak_ev_median": m["peak_position_error_ev_median"], "peak_ev_mean": m["peak_position_error_ev_mean"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=SHARED, help="the reference data directory (../shared/data)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[250, 500, 1000, 2000, 0], help="training-set sizes (0: the whole pool)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=400, help="epoch cap (early stopping usually ends sooner)")
    ap.add_argument("--val-fraction", type=float, default=0.15, help="share of the non-held-out spectra that scores the runs")
    ap.add_argument("--arms", nargs="+", default=["scratch", *SOURCES], choices=["scratch", *SOURCES],
                    help="scratch, finetuned (pretrained on FEFF Fe), finetuned_all (on FEFF Ti-Zn)")
    ap.add_argument("--pretrain-out", type=Path, help="also save an ensemble pretrained on FEFF here (for --init-from)")
    ap.add_argument("--pretrain-arm", default="finetuned", choices=list(SOURCES), help="which pretraining data --pretrain-out uses")
    ap.add_argument("--ensemble", type=int, default=5, help="members of the --pretrain-out ensemble")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "transfer.json")
    ap.add_argument("--markdown-only", action="store_true", help="only rewrite the tables of the report from its JSON")
    args = ap.parse_args()
    if args.markdown_only:
        write_markdown(json.loads(args.report.read_text()), args.report.with_suffix(".md"))
        return
    import torch

    from xanesnet.training import train

    torch.set_num_threads(args.threads)
    report = json.loads(args.report.read_text()) if args.report.is_file() else {}
    runs = report.get("runs", [])
    done = {(r["arm"], r["size"], r["seed"]) for r in runs}

    data_dir = fe_data_dir(args.shared / ARCHIVE.name)
    base = Config()
    fd = build_training_set(data_dir / "xyz", data_dir / "xanes_conv", base, cache=cache_dir() / "features.h5")
    splits = fixed_splits(fd.ids, val_fraction=args.val_fraction, seed=SPLIT_SEED)
    test, n_val = splits.test, int(splits.validation.sum())
    val, pool = np.flatnonzero(splits.validation), splits.order[n_val:]  # the pool in its seeded order
    x_val, y_val, energy = fd.x[val], fd.y[val], fd.energy

    excluded = {refcode(fd.ids[i]) for i in np.concatenate([val, np.flatnonzero(test)])}
    excluded_final = {refcode(fd.ids[i]) for i in np.flatnonzero(test)}
    fd_e0 = float(np.median([edge_energy(_spectrum(energy, y)) for y in fd.y[pool]]))
    metals = sorted({m for arm in args.arms if arm in SOURCES for m in SOURCES[arm]} | {"Fe"}, key=FIRST_ROW_TM.index)
    feff, feff_report = {}, {}
    for metal in metals:
        names, x_m, spectra = feff_xanes(metal, base, args.shared)
        e0 = float(np.median([s.e0 for s in spectra]))
        shift = fd_e0 - e0
        feff[metal] = (names, x_m, on_fdmnes_grid(spectra, energy, shift))
        left_out = sum(refcode(n) in excluded for n in names)
        feff_report[metal] = {"n": len(names), "left_out": left_out, "e0_median": e0, "shift_ev": shift}
        print(f"FEFF {metal}: {len(names)} spectra, {left_out} left out (refcode in the FDMNES validation/held-out), "
              f"shift {shift:+.2f} eV (E0 FDMNES Fe {fd_e0:.2f}, FEFF {e0:.2f})", flush=True)

    def pretraining_set(arm: str, leave_out: set[str]) -> TrainingSet:
        parts = [feff[m] for m in SOURCES[arm]]
        ids = [n for names, _, _ in parts for n in names]
        keep = np.array([refcode(n) not in leave_out for n in ids])
        return TrainingSet(ids=[i for i, k in zip(ids, keep) if k], x=np.vstack([p[1] for p in parts])[keep],
                           y=np.vstack([p[2] for p in parts])[keep], energy=energy)

    print(f"FDMNES: {len(fd.ids)} spectra, held-out {int(test.sum())}, validation {len(val)}, pool {len(pool)}", flush=True)
    report.pop("feff", None)
    report.update({
        "fdmnes": {"n": len(fd.ids), "heldout": int(test.sum()), "validation": int(len(val)), "pool": int(len(pool)),
                   "val_fraction": args.val_fraction, "split_seed": SPLIT_SEED, "e0_median": fd_e0},
        "feff_xanes": {**report.get("feff_xanes", {}), **feff_report},
        "feff_broadening": FEFF_BROADENING,
        "sources": SOURCES,
        "settings": {"descriptor": "default (the shipped model's)", "model": base.model, "ensemble": 1, "epochs_cap": args.epochs,
                     "training": {k: v for k, v in single_config(0, args.epochs).training.__dict__.items()}},
        "mean_spectrum_val_mse": float(np.mean((y_val - fd.y[pool].mean(0)) ** 2)),
    })
    if "0" in report.get("pretrain", {}):  # written before there were several pretraining sources
        report["pretrain"] = {"finetuned": report["pretrain"]}

    def save() -> None:
        report["runs"] = sorted(runs, key=lambda r: (r["size"] or 10**9, r["seed"], r["arm"]))
        report["commit"] = git_commit() or "unknown"
        args.report.write_text(json.dumps(report, indent=1))
        write_markdown(report, args.report.with_suffix(".md"))

    pretrained = {}
    for arm in [a for a in args.arms if a in SOURCES]:
        pre = pretraining_set(arm, excluded)
        for seed in args.seeds:
            t0 = time.perf_counter()
            p = train(pre.x, pre.y, single_config(seed, args.epochs), progress=False)
            pretrained[arm, seed] = p.members[0].state_dict()
            report.setdefault("pretrain", {}).setdefault(arm, {})[str(seed)] = {
                **p.history[0], "n": len(pre.ids), "seconds": time.perf_counter() - t0, "fdmnes_val": score(p, x_val, y_val, energy)}
            print(f"pretrained {arm} seed {seed} on {len(pre.ids)} FEFF spectra: {p.history[0]} in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        save()

    for size in args.sizes:
        for seed in args.seeds:
            order = np.random.default_rng(seed).permutation(pool)
            sub = np.sort(order[:size] if size else order)
            for arm in args.arms:
                if (arm, size, seed) in done:
                    continue
                t0 = time.perf_counter()
                init = [pretrained[arm, seed]] if arm in SOURCES else None
                trained = train(fd.x[sub], fd.y[sub], single_config(seed, args.epochs), init=init, progress=False)
                row = {"arm": arm, "size": size, "n_train": int(len(sub)), "seed": seed, **score(trained, x_val, y_val, energy),
                       "best_epoch": trained.history[0]["best_epoch"], "epochs_run": trained.history[0]["epochs_run"],
                       "seconds": round(time.perf_counter() - t0, 1)}
                runs.append(row)
                save()
                print(f"{arm:13s} n={len(sub):4d} seed {seed}: val MSE {row['mse']:.3e}, peak median {row['peak_ev_median']:.2f} eV, "
                      f"epochs {row['epochs_run']}, {row['seconds']:.0f} s", flush=True)

    if args.pretrain_out:
        from xanesnet.pipeline import train_model

        config = Config(seed=0)
        config.training.ensemble = args.ensemble
        config.training.epochs = args.epochs
        data = pretraining_set(args.pretrain_arm, excluded_final)
        train_model(data, config, args.pretrain_out, progress=False,
                    metadata={"element": "Fe", "edge": "K", "spectrum": "xanes",
                              "reference": f"FEFF10 K-edge XANES of {', '.join(SOURCES[args.pretrain_arm])} (1 eV Lorentzian), "
                                           "each metal shifted onto the FDMNES Fe grid by its median edge"})
        print(f"saved the FEFF-pretrained ensemble ({len(data.ids)} spectra) to {args.pretrain_out}")


def _spectrum(energy: np.ndarray, y: np.ndarray):
    from xanesnet.io.spectra import Spectrum

    return Spectrum(energy=energy, intensity=y, name="fdmnes")


if __name__ == "__main__":
    main()
