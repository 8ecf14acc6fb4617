"""The shipped FEFF models on the example molecules: textbook geometries that are in no training set.

The references are our own FEFF10 runs of ``data/examples/`` with the same
cards as the training data (``data/feff_examples/examples.h5``). Each goes
through the model's own processing (broadening, grid); the score is the MSE
relative to that of the model's mean training spectrum (below 1: better than
knowing nothing about the molecule). ``scripts/check_examples.py`` runs it and
writes ``docs/examples_feff.md`` and ``.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xanesnet.analysis.metrics import main_peak
from xanesnet.atomic import write_text
from xanesnet.errors import XanesnetError
from xanesnet.experiments import ROOT
from xanesnet.experiments import write_report as stamped_report
from xanesnet.predict import Predictor
from xanesnet.resources import models_dir
from xanesnet.simulate.store import read_simulations
from xanesnet.spectra import processor_from_dict
from xanesnet.uncertainty import EXTRAPOLATION_LIMIT

REFERENCES = ROOT / "data" / "feff_examples" / "examples.h5"


def check(references: Path = REFERENCES, models: Path | None = None) -> list[dict]:
    """One row per (molecule, spectrum): the model's error, the mean training spectrum's, trust, and why not."""
    models = models_dir() if models is None else Path(models)
    rows = []
    for spectrum in ("xanes", "xes"):
        for sim in read_simulations(references, spectrum):
            metal = sim.structure.symbols[sim.absorber]
            model = models / f"{metal.lower()}-k-{spectrum}-feff"
            predictor = Predictor.from_bundle(model)
            energy = predictor.energy
            row = {"molecule": sim.structure.name, "metal": metal, "spectrum": spectrum, "model": model.name}
            try:  # the model's own processing; it refuses a spectrum that does not cover the grid
                reference = processor_from_dict(predictor.bundle.config["spectra"])(sim.spectrum)
            except XanesnetError as exc:
                rows.append({**row, "skipped": exc.message})  # the row names the molecule
                continue
            assert np.allclose(reference.energy, energy), (model, sim.structure.name)
            pred = predictor.predict([sim.structure], absorber=sim.absorber)
            # zero in the transformed space is the mean training spectrum (standardised or PCA targets alike; for the
            # softplus target the softplus of the mean of softplus^-1(y), equal to the mean where y >> 1% of the maximum)
            mean_spectrum = predictor.bundle.y_transform.inverse_transform(np.zeros((1, predictor.bundle.members[0].n_out)))
            mse = float(np.mean((pred.mean[0] - reference.intensity) ** 2))
            baseline = float(np.mean((mean_spectrum[0] - reference.intensity) ** 2))
            peak_true = main_peak(energy, reference.intensity[None])[0][0]
            peak_pred = main_peak(energy, pred.mean)[0][0]
            rows.append({**row, "mse": mse, "mean_spectrum_mse": baseline, "ratio": mse / baseline,
                         "peak_error_ev": float(abs(peak_pred - peak_true)), "score": float(pred.score[0]),
                         "trusted": bool(pred.trusted[0]),
                         "beyond_range": float(pred.extrapolation[0]), "feature": pred.extrapolated_feature[0]})
    return rows


def summary(rows: list[dict]) -> dict:
    done = [r for r in rows if "ratio" in r]
    out = {"n": len(done), "n_skipped": len(rows) - len(done)}
    for label, part in (("all", done), ("trusted", [r for r in done if r["trusted"]]),
                        ("not_trusted", [r for r in done if not r["trusted"]])):
        ratios = np.array([r["ratio"] for r in part])
        out[label] = {"n": int(len(part)), "median_ratio": float(np.median(ratios)) if len(part) else None,
                      "better_than_mean_spectrum": float(np.mean(ratios < 1)) if len(part) else None}
    return out


def write_report(rows: list[dict], out_dir: Path) -> None:
    """``examples_feff.json`` (stamped with the commit) and ``examples_feff.md`` in ``out_dir``, each written atomically."""
    s = summary(rows)
    stamped_report(Path(out_dir) / "examples_feff.json", {"summary": s, "rows": rows})
    lines = ["# The FEFF models on the example molecules", "",
             "Textbook geometries from `data/examples/` (in no training set) against our own FEFF10 runs of them "
             "(`data/feff_examples/examples.h5`, same cards as the training data), each through its model's "
             "processing. Ratio: the model's MSE over that of the model's mean training spectrum. Written by "
             "`python scripts/check_examples.py`.", "",
             "| molecule | model | MSE | ratio to mean spectrum | main-peak error (eV) | score | trusted | "
             "beyond training range (std) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "ratio" not in r:
            lines.append(f"| {r['molecule']} | {r['model']} | skipped: {r['skipped']} | | | | | |")
            continue
        beyond = f"{r['beyond_range']:.3g}" + (f" ({r['feature']})" if r["beyond_range"] > EXTRAPOLATION_LIMIT else "")
        lines.append(f"| {r['molecule']} | {r['model']} | {r['mse']:.3g} | {r['ratio']:.2f} | {r['peak_error_ev']:.2f} | "
                     f"{r['score']:.3g} | {'yes' if r['trusted'] else '**no**'} | {beyond} |")
    lines += ["", f"{s['n']} spectra ({s['n_skipped']} skipped). Median ratio: all {s['all']['median_ratio']:.2f}; "
              f"trusted ({s['trusted']['n']}) {_fmt(s['trusted']['median_ratio'])}; "
              f"not trusted ({s['not_trusted']['n']}) {_fmt(s['not_trusted']['median_ratio'])}. Better than the mean "
              f"spectrum: {100 * s['all']['better_than_mean_spectrum']:.0f}% of all.", ""]
    write_text(Path(out_dir) / "examples_feff.md", "\n".join(lines))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
