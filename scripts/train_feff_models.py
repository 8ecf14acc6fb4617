"""Train the shipped FEFF models: K-edge XANES and K-beta XES of Ti-Zn, 18 models in models/<el>-k-<spectrum>-feff.

Data, per metal and spectrum (``xanesnet.data.feff.load_feff``), merged by name (first one wins):

- ``feff_3d`` and ``feff_3d_more`` (``../shared/data``, ~86 + 105 complexes per
  metal, FEFF10 ``xmu.dat``), paired by file name;
- our own FEFF10 runs on further tmQM complexes (``xanesnet simulate``, same
  cards), from the committed copy ``data/feff_extra/<Metal>.npz`` (see
  ``scripts/export_feff_extra.py``) and, with ``--live``, also the live
  simulation file.

Spectra go onto the fixed absolute grids of :data:`GRIDS` (chosen from the
``--survey`` output; every metal's grid has the same width and number of
points); a spectrum that does not cover its grid is skipped and counted with
the reason. XANES gets a 1 eV Lorentzian on top of FEFF's own core-hole
broadening, XES none, and each XES is scaled to mean intensity 1 on its grid
(see docs/feff_models.md). The networks predict through a softplus, so no
intensity is ever negative. The held-out 10% (SHA-256 of the name) is never
trained on; the hyperparameters come from scripts/select_feff_models.py and
scripts/compare_feff_models.py (cross-validation inside the rest). Writes
docs/feff_models.md and .json.

    python scripts/train_feff_models.py [--metals Fe Cu] [--spectra xes] [--live] [--survey]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xanesnet.config import Config, TrainingSettings
from xanesnet.data.dataset import heldout_mask, stack_spectra
from xanesnet.data.feff import EXTRA_DIR, FEFF_SPECTRA, FeffData, live_simulation_file, load_feff
from xanesnet.descriptors import WACSF, descriptor_from_dict, preset
from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum
from xanesnet.io.structures import FIRST_ROW_TM
from xanesnet.pipeline import TrainingSet, train_model
from xanesnet.spectra import ProcessSettings, check_coverage, parse_grid, processor_from_dict

ROOT = Path(__file__).resolve().parents[1]
SPECTRA = FEFF_SPECTRA
LIVE_H5 = live_simulation_file()
logger = logging.getLogger("train_feff_models")

#: Start (eV) of each metal's absolute grid: XANES from the range every spectrum of feff_3d covers (0.5 eV steps), XES
#: from the 2nd-98th percentile of starts and ends (FEFF's own 0.25 eV step); scripts/train_feff_models.py --survey.
GRID_START: dict[tuple[str, str], float] = {
    ("Ti", "xanes"): 4961.5, ("V", "xanes"): 5462.0, ("Cr", "xanes"): 5987.0, ("Mn", "xanes"): 6536.0,
    ("Fe", "xanes"): 7109.5, ("Co", "xanes"): 7705.5, ("Ni", "xanes"): 8328.0, ("Cu", "xanes"): 8979.0,
    ("Zn", "xanes"): 9655.0,
    ("Ti", "xes"): 4940.0, ("V", "xes"): 5439.5, ("Cr", "xes"): 5964.0, ("Mn", "xes"): 6513.0, ("Fe", "xes"): 7087.5,
    ("Co", "xes"): 7685.5, ("Ni", "xes"): 8308.5, ("Cu", "xes"): 8959.0, ("Zn", "xes"): 9634.0,
}
#: Every metal's grid has the same width and number of points (the narrowest metal's), so that one network can
#: predict all nine on one grid relative to each metal's start (the universal model).
GRID_SHAPE: dict[str, tuple[float, int]] = {"xanes": (66.0, 133), "xes": (49.0, 197)}
GRIDS: dict[tuple[str, str], str] = {
    (m, s): f"absolute:{e:g}:{e + GRID_SHAPE[s][0]:g}:{GRID_SHAPE[s][1]}" for (m, s), e in GRID_START.items()}
#: XES: FEFF's overall intensity varies several-fold between molecules of one metal (Ti 0.7-4.0 at the maximum), which
#: the structure explains poorly; the models learn the shape, each spectrum scaled to mean intensity 1 on the grid.
#: XANES: FEFF's mu is already edge-step normalised.
MEAN_INTENSITY: dict[str, float | None] = {"xanes": None, "xes": 1.0}
#: Extra broadening on top of FEFF's core-hole lifetime: XANES only, to smooth FEFF's 1-2 eV steps above the edge.
BROADENING: dict[str, dict | None] = {"xanes": {"kind": "lorentzian", "width": 1.0}, "xes": None}
#: Chosen by scripts/select_feff_models.py (5-fold cross-validation inside the non-held-out data): the plain
#: wACSF on 1-6 A (97 features; on 0-6 A the nearly empty short-range Gaussians make MLPs extrapolate wildly
#: for the odd molecule with a very short contact) and a small MLP with strong dropout.
DESCRIPTOR = WACSF(r_min=1.0).to_dict()
MODEL = {"kind": "mlp", "hidden": [64, 64], "activation": "silu", "dropout": 0.3}
#: softplus output: every predicted intensity is positive by construction (xanesnet.transforms.Softplus).
TRAINING = {"ensemble": 5, "batch_size": 16, "lr": 1e-3, "val_fraction": 0.15, "patience": 100, "epochs": 2000,
            "target_transform": "softplus"}
REFERENCE = {
    "xanes": "FEFF10 (feff10-rs 0.2.4) K-edge XANES of tmQM complexes (XANES 4.0, SCF 2.5 0 6, FMS 4.0, RPATH -1), "
             "plus a 1 eV Lorentzian",
    "xes": "FEFF10 (feff10-rs 0.2.4) K-beta (valence-to-core) XES of tmQM complexes (XES -40 15 0.25, SCF 2.5 0 6, "
           "FMS 4.0, RPATH -1), FEFF omega scale, each spectrum scaled to mean intensity 1 on the grid (shape only)",
}


@dataclass
class Sources:
    """Where a metal's training data came from, and what was left out and why."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def spectra_settings(metal: str, spectrum: str) -> dict:
    """The ``spectra`` section of the config (every setting spelt out): broadening, grid, linear interpolation."""
    return ProcessSettings.from_dict({"broadening": BROADENING[spectrum], "grid": GRIDS[(metal, spectrum)],
                                      "method": "linear", "mean_intensity": MEAN_INTENSITY[spectrum]}).to_dict()


def make_config(metal: str, spectrum: str, *, seed: int = 0, descriptor: str | dict = DESCRIPTOR,
                model: dict | None = None, training: dict | None = None) -> Config:
    """The full training config; ``descriptor`` is a preset name or descriptor settings."""
    settings = preset(descriptor).to_dict() if isinstance(descriptor, str) else dict(descriptor)
    return Config(descriptor=settings, model=dict(model or MODEL),
                  training=TrainingSettings(**(training or TRAINING)), spectra=spectra_settings(metal, spectrum), seed=seed)


def _coverage_problem(spectrum: Spectrum, grid: str) -> str | None:
    g = parse_grid(grid)
    try:
        check_coverage(spectrum, g.start, g.stop)
    except XanesnetError as exc:
        return exc.message
    return None


def _assemble(items: list[tuple[str, object, int, Spectrum]], config: Config, sources: Sources, grid: str
              ) -> TrainingSet:
    """Featurise ``(source, structure, absorber, raw spectrum)`` items that cover the grid and stack their spectra."""
    descriptor = descriptor_from_dict(config.descriptor)
    process = processor_from_dict(config.spectra)
    ids, rows, spectra = [], [], []
    for label, structure, absorber, spec in items:
        problem = _coverage_problem(spec, grid)
        if problem is None:
            try:
                rows.append(descriptor.create(structure, absorber))
            except XanesnetError as exc:
                problem = exc.message
        if problem is not None:
            sources.skipped.append((f"{label}:{structure.name}", problem))
            continue
        sources.counts[label] = sources.counts.get(label, 0) + 1
        ids.append(structure.name)
        spectra.append(spec)
    if not ids:
        raise XanesnetError("no training data")
    energy, y = stack_spectra(spectra, process=process)
    return TrainingSet(ids=ids, x=np.vstack(rows), y=y, energy=energy)


def load_data(metal: str, spectrum: str, config: Config, *, extra_dir: Path | None = EXTRA_DIR,
              live: Path | None = None, feff: FeffData | None = None) -> tuple[TrainingSet, Sources]:
    """feff_3d + feff_3d_more + our committed runs (+ the live simulation file), merged by name, on the model grid."""
    feff = feff or load_feff(metal, spectrum, extra_dir=extra_dir, live=live)
    sources = Sources(skipped=list(feff.skipped))
    items = [(label, s.structure, s.absorber, s.spectrum) for label, s in feff.molecules()]
    data = _assemble(items, config, sources, GRIDS[(metal, spectrum)])
    if feff.duplicates:
        sources.counts["duplicates_dropped"] = feff.duplicates
    return data, sources


def cross_validate(x: np.ndarray, y: np.ndarray, energy: np.ndarray, config: Config, *, folds: int = 5) -> dict:
    """K-fold CV (seed 12345) of ``config`` trained as given; MSE against each fold-training mean spectrum.

    Call it on the non-held-out data only.
    """
    from xanesnet.analysis.metrics import evaluate_spectra
    from xanesnet.bundle import Bundle
    from xanesnet.pipeline import model_config
    from xanesnet.predict import Predictor
    from xanesnet.training import train

    perm = np.random.default_rng(12345).permutation(len(x))
    mse, base, peak = [], [], []
    for k in range(folds):
        test = np.sort(perm[k::folds])
        fit = np.setdiff1d(np.arange(len(x)), test)
        trained = train(x[fit], y[fit], config, progress=False)
        pred = Predictor(Bundle(path=None, config=model_config(trained, energy, [f"x{i}" for i in range(x.shape[1])]),
                                members=trained.members)).predict_features(x[test]).mean
        m = evaluate_spectra(energy, y[test], pred)
        mse.append(m["mse"] * len(test))
        base.append(float(np.mean((y[test] - y[fit].mean(0)) ** 2)) * len(test))
        peak.append(m["peak_position_error_ev_mean"] * len(test))
    n = len(x)
    return {"mse": sum(mse) / n, "mean_mse": sum(base) / n, "ratio": sum(mse) / sum(base), "peak_ev_mean": sum(peak) / n}


def survey(metals: list[str], extra_dir: Path) -> None:
    """Print, per metal and spectrum, the raw energy ranges and a proposed grid."""
    for spectrum, step in (("xanes", 0.5), ("xes", 0.25)):
        for metal in metals:
            specs = [s.spectrum for _, s in load_feff(metal, spectrum, extra_dir=extra_dir).molecules()]
            start = np.array([s.energy[0] for s in specs])
            stop = np.array([s.energy[-1] for s in specs])
            lo_q, hi_q = (100, 0) if spectrum == "xanes" else (98, 2)
            a = math.ceil(np.percentile(start, lo_q) * 2) / 2
            b = math.floor(np.percentile(stop, hi_q) * 2) / 2
            short = int(np.sum((start > a + 1e-3) | (stop < b - 1e-3)))
            print(f"{metal:2s} {spectrum:5s} n={len(specs):3d} points {min(len(s.energy) for s in specs)}-"
                  f"{max(len(s.energy) for s in specs)}; start {start.min():.1f}-{start.max():.1f}, "
                  f"stop {stop.min():.1f}-{stop.max():.1f} eV; proposed absolute:{a:g}:{b:g}:{int(round((b - a) / step)) + 1} "
                  f"({short} short); in use {GRIDS[(metal, spectrum)]}")


def train_one(metal: str, spectrum: str, *, out_dir: Path, extra_dir: Path, live: Path | None, seed: int,
              folds: int = 5) -> dict:
    """Train and save one model; score it on the held-out 10% and by ``folds``-fold CV of the same settings on the rest."""
    config = make_config(metal, spectrum, seed=seed)
    data, sources = load_data(metal, spectrum, config, extra_dir=extra_dir, live=live)
    test = heldout_mask(data.ids)
    mean = data.y[~test].mean(0)
    from xanesnet.analysis.metrics import evaluate_spectra

    baseline = evaluate_spectra(data.energy, data.y[test], np.broadcast_to(mean, data.y[test].shape))
    out = out_dir / f"{metal.lower()}-k-{spectrum}-feff"
    start = time.perf_counter()
    saved = train_model(data, config, out, holdout=0.1, progress=False,
                        metadata={"element": metal, "edge": "K", "spectrum": spectrum, "reference": REFERENCE[spectrum],
                                  "data_sources": sources.counts, "n_skipped": len(sources.skipped),
                                  "skipped": [f"{n}: {r}" for n, r in sources.skipped]})
    m = saved["holdout_metrics"]
    size = sum(p.stat().st_size for p in out.iterdir())
    cv = cross_validate(data.x[~test], data.y[~test], data.energy, make_config(metal, spectrum, seed=seed)) if folds else {}
    return {"metal": metal, "spectrum": spectrum, "model": out.name, "grid": GRIDS[(metal, spectrum)],
            "n_train": saved["n_train"], "n_heldout": m["n"], "sources": sources.counts,
            "skipped": [f"{n}: {r}" for n, r in sources.skipped], "mse": m["mse"], "mean_spectrum_mse": baseline["mse"],
            "ratio": m["mse"] / baseline["mse"], "peak_ev_mean": m["peak_position_error_ev_mean"],
            "peak_ev_median": m["peak_position_error_ev_median"], "peak_pct_mean": m["peak_intensity_error_pct_mean"],
            "mean_spectrum_peak_ev_mean": baseline["peak_position_error_ev_mean"],
            "mean_spectrum_peak_pct_mean": baseline["peak_intensity_error_pct_mean"],
            "coverage_2sigma": m.get("coverage_2sigma"), "cv_ratio": cv.get("ratio"), "cv_peak_ev_mean": cv.get("peak_ev_mean"),
            "seconds": time.perf_counter() - start, "bytes": size}


def write_report(rows: list[dict], path: Path) -> None:
    """docs/feff_models.md (table) and .json (everything, including skipped molecules).

    Rows of models not retrained in this run are kept from the existing .json.
    """
    order = {(m, s): k for k, (s, m) in enumerate((s, m) for s in SPECTRA for m in FIRST_ROW_TM)}
    old = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else []
    new = {(r["metal"], r["spectrum"]) for r in rows}
    rows = sorted([r for r in old if (r["metal"], r["spectrum"]) not in new] + rows,
                  key=lambda r: order[(r["metal"], r["spectrum"])])
    lines = [
        "# Shipped FEFF models (Ti-Zn, K-edge XANES and K-beta XES)", "",
        "Written by `scripts/train_feff_models.py`; held-out = the fixed 10% by SHA-256 of the name, never trained on. "
        "`mean MSE` = predicting the mean training spectrum for every held-out molecule; ratio = model / mean "
        "(below 1 is better). Main peak = the global maximum of the spectrum on the grid. "
        "Held-out sets are small (~10 molecules per model), so every number here is noisy; the last column, "
        "MSE / mean-spectrum MSE of the same settings in 5-fold cross-validation on the non-held-out molecules "
        "(~100 predictions each), is the steadier estimate.", "",
        "| metal | spectrum | grid (eV) | n_train | n_heldout | held-out MSE | mean-spectrum MSE | ratio | "
        "main-peak error mean / median (eV) | mean spectrum peak error (eV) | peak intensity error (%) | coverage_2sigma "
        "| 5-fold CV ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g = parse_grid(r["grid"])
        cov = "-" if r["coverage_2sigma"] is None else f"{r['coverage_2sigma']:.2f}"
        lines.append(f"| {r['metal']} | {r['spectrum']} | {g.start:g}-{g.stop:g} ({g.n}) | {r['n_train']} | {r['n_heldout']} | "
                     f"{r['mse']:.2e} | {r['mean_spectrum_mse']:.2e} | {r['ratio']:.2f} | "
                     f"{r['peak_ev_mean']:.2f} / {r['peak_ev_median']:.2f} | {r['mean_spectrum_peak_ev_mean']:.2f} | "
                     f"{r['peak_pct_mean']:.1f} | {cov} | {'-' if r.get('cv_ratio') is None else format(r['cv_ratio'], '.2f')} |")
    total = sum(r["bytes"] for r in rows)
    lines += ["", f"Total size of the {len(rows)} model directories: {total / 1e6:.1f} MB.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = "<!-- table -->"
    if path.is_file() and marker in path.read_text():
        head = path.read_text().split(marker)[0]
        path.write_text(head + marker + "\n\n" + "\n".join(lines[2:]) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--spectra", nargs="+", default=list(SPECTRA), choices=SPECTRA)
    ap.add_argument("--extra-dir", type=Path, default=EXTRA_DIR, help="committed copies of our simulations")
    ap.add_argument("--live", nargs="?", const=LIVE_H5, type=Path, default=None,
                    help=f"also read the live simulation file (default {LIVE_H5})")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "feff_models.md")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cv", type=int, default=5, help="also cross-validate the settings in this many folds (0: no)")
    ap.add_argument("--survey", action="store_true", help="only print the energy ranges and proposed grids")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.survey:
        survey(args.metals, args.extra_dir)
        return
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for spectrum in args.spectra:
        for metal in args.metals:
            r = train_one(metal, spectrum, out_dir=args.out_dir, extra_dir=args.extra_dir, live=args.live, seed=args.seed,
                          folds=args.cv)
            rows.append(r)
            print(f"{metal:2s} {spectrum:5s} n_train {r['n_train']:3d} held-out {r['n_heldout']:2d} "
                  f"({', '.join(f'{k} {v}' for k, v in r['sources'].items())}; skipped {len(r['skipped'])}): "
                  f"MSE {r['mse']:.2e} vs mean {r['mean_spectrum_mse']:.2e} (ratio {r['ratio']:.2f}); "
                  f"peak {r['peak_ev_mean']:.2f}/{r['peak_ev_median']:.2f} eV, {r['peak_pct_mean']:.1f}%; "
                  f"cov2s {r['coverage_2sigma']:.2f}; CV ratio {r['cv_ratio'] or float('nan'):.2f}; {r['seconds']:.0f} s, {r['bytes'] / 1e3:.0f} kB", flush=True)
            for s in r["skipped"]:
                print(f"   skipped {s}", flush=True)
    write_report(rows, args.report)
    print(f"wrote {args.report} and {args.report.with_suffix('.json')}")


if __name__ == "__main__":
    main()
