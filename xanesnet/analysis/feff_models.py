"""Tables of the shipped FEFF Ti-Zn models (``scripts/train_feff_models.py`` writes them; a test checks the README), and
their z-scored skill on the held-out molecules (``scripts/skill_feff_models.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from xanesnet.data.feff import FEFF_SPECTRA
from xanesnet.io.structures import FIRST_ROW_TM


def readme_table(rows: list[dict]) -> str:
    """The README's table of the 18 models: one line per metal, XANES and XES side by side."""
    by = {(r["metal"], r["spectrum"]): r for r in rows}
    lines = ["| metal | XANES: model | n train / held-out | held-out MSE ratio | 5-fold CV ratio | XES: model | "
             "n train / held-out | held-out MSE ratio | 5-fold CV ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for metal in FIRST_ROW_TM:
        cells = [metal]
        for spectrum in FEFF_SPECTRA:
            r = by[(metal, spectrum)]
            cv = "-" if r.get("cv_ratio") is None else f"{r['cv_ratio']:.2f}"
            cells += [r["kind"].replace("_", "-"), f"{r['n_train']} / {r['n_heldout']}", f"{r['ratio']:.2f}", cv]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The molecules' FEFF spectra, as the shipped models are judged against them: FEFF's own output on the model's grid
#: (no extra broadening), and through the model's own processing (what it was trained and cross-validated on).
SKILL_REFERENCES = ("as_written", "model_processing")
SKILL_BAR = 0.5


def heldout_skill(models: Path, metals: Sequence[str] = FIRST_ROW_TM, spectra: Sequence[str] = FEFF_SPECTRA
                  ) -> list[dict]:
    """Z-scored skill (:func:`~xanesnet.analysis.metrics.zscored_skill`) of each shipped FEFF model on its held-out 10%.

    The held-out molecules are those of :func:`~xanesnet.data.feff.load_feff`
    whose name falls in the fixed 10% (never trained on, never used to choose
    anything), including ones added to the data after the model was trained.
    A molecule whose spectrum does not cover the model's grid is counted, not
    scored. One row per model: the median skill and the fraction below
    :data:`SKILL_BAR` against each of :data:`SKILL_REFERENCES`.
    """
    from xanesnet.analysis.metrics import zscored_skill
    from xanesnet.data.dataset import heldout_mask
    from xanesnet.data.feff import load_feff
    from xanesnet.errors import XanesnetError
    from xanesnet.predict import Predictor
    from xanesnet.spectra import processor_from_dict

    rows = []
    for spectrum in spectra:
        for metal in metals:
            predictor = Predictor.from_bundle(Path(models) / f"{metal.lower()}-k-{spectrum}-feff")
            settings = predictor.bundle.config["spectra"]
            process = {"as_written": processor_from_dict({**settings, "broadening": None}),
                       "model_processing": processor_from_dict(settings)}
            molecules = [s for _, s in load_feff(metal, spectrum).molecules()]
            held = heldout_mask([s.structure.name for s in molecules])
            refs, x, skipped = {k: [] for k in SKILL_REFERENCES}, [], 0
            for sim in (s for s, h in zip(molecules, held) if h):
                try:
                    ref = {k: p(sim.spectrum).intensity for k, p in process.items()}
                except XanesnetError:
                    skipped += 1
                    continue
                for k in SKILL_REFERENCES:
                    refs[k].append(ref[k])
                x.append(predictor.descriptor.create(sim.structure, sim.absorber))
            mean = predictor.predict_features(np.vstack(x)).mean
            row = {"metal": metal, "spectrum": spectrum, "model": f"{metal.lower()}-k-{spectrum}-feff",
                   "model_sha256": predictor.bundle.config.get("model_sha256"), "n": len(x),
                   "skipped_not_covering_grid": skipped}
            for k in SKILL_REFERENCES:
                skill = zscored_skill(np.array(refs[k]), mean)
                row[k] = {"median": float(np.median(skill)), "below_bar": float(np.mean(skill < SKILL_BAR)),
                          "mean": float(np.mean(skill))}
            rows.append(row)
    return rows


def skill_markdown(report: dict, source: str = "docs/feff_skill.json") -> str:
    """The table of :func:`heldout_skill`'s rows, with where it came from."""
    lines = [f"From `{source}` (`scripts/skill_feff_models.py`, commit `{report['provenance']['commit']}`): each "
             "shipped model on the held-out molecules of its metal, every spectrum z-scored over the model's grid; "
             "skill = 1 - MSE(prediction, FEFF) / MSE(mean of the other held-out molecules, FEFF) per molecule "
             f"(1 is perfect, 0 no better than the other molecules' mean; the bar is a median of {SKILL_BAR:g}). "
             "`as written`: against FEFF's spectrum on the grid as FEFF wrote it; `model's processing`: against "
             "the same spectrum as the model was trained on (the XANES with its extra 1 eV Lorentzian).", "",
             "| metal | spectrum | n | median skill, as written | below the bar | median skill, model's processing | "
             "below the bar |", "|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        a, m = r["as_written"], r["model_processing"]
        lines.append(f"| {r['metal']} | {r['spectrum']} | {r['n']} | {a['median']:.2f} | {100 * a['below_bar']:.0f}% | "
                     f"{m['median']:.2f} | {100 * m['below_bar']:.0f}% |")
    return "\n".join(lines)
