"""Z-scored skill of the shipped FEFF models on their held-out molecules, against FEFF's own spectra.

The skill a user (or anyone scoring the models on complexes that are in none
of the data) sees: every spectrum z-scored over the model's grid, so that no
normalisation can matter, and each prediction compared with predicting the
mean of the other molecules. Scored against FEFF's spectrum as written and
as the model was trained on it (``xanesnet.analysis.feff_models.heldout_skill``).
Writes ``docs/feff_skill.json`` and the table between the ``skill`` markers
of ``docs/feff_models.md``.

    python scripts/skill_feff_models.py [--metals Fe Cu] [--spectra xes]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xanesnet.analysis.feff_models import SKILL_BAR, heldout_skill, skill_markdown
from xanesnet.data.feff import FEFF_SPECTRA
from xanesnet.experiments import ROOT, replace_between, write_report
from xanesnet.io.structures import FIRST_ROW_TM

MARKERS = ("<!-- skill -->", "<!-- /skill -->")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metals", nargs="+", default=list(FIRST_ROW_TM))
    ap.add_argument("--spectra", nargs="+", default=list(FEFF_SPECTRA), choices=FEFF_SPECTRA)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "feff_skill.json")
    ap.add_argument("--markdown", type=Path, default=ROOT / "docs" / "feff_models.md")
    args = ap.parse_args()
    rows = heldout_skill(args.models, args.metals, args.spectra)
    report = json.loads(write_report(args.out, {"bar": SKILL_BAR, "rows": rows}).read_text())
    replace_between(args.markdown, MARKERS, "\n\n" + skill_markdown(report) + "\n\n")
    for r in rows:
        print(f"{r['metal']:2s} {r['spectrum']:5s} n {r['n']:3d}: median skill {r['as_written']['median']:.2f} as written, "
              f"{r['model_processing']['median']:.2f} as processed")


if __name__ == "__main__":
    main()
