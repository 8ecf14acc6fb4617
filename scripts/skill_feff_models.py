"""Z-scored skill of the shipped FEFF models on their held-out molecules, against FEFF's own spectra.

The skill a user (or anyone scoring the models on complexes that are in none
of the data) sees: every spectrum z-scored over the model's grid, so that no
normalisation can matter, and each prediction compared with predicting the
mean of the other molecules. Scored against FEFF's spectrum as written and
as the model was trained on it (``xanesnet.analysis.feff_models.heldout_skill``).
Writes ``docs/feff_skill.json`` and the table between the ``skill`` markers
of ``docs/feff_models.md``.

    python scripts/skill_feff_models.py [--metals Fe Cu] [--spectra xes]

The models of an earlier commit, without touching the checkout:

    python scripts/skill_feff_models.py --models-commit e198e0c --spectra xes \
        --out docs/feff_skill_xes_broadened.json --markdown ''
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
import tempfile
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
    ap.add_argument("--models-commit", help="score the models/ of this git commit instead")
    ap.add_argument("--markdown", default=str(ROOT / "docs" / "feff_models.md"),
                    help="the document whose skill section is rewritten ('' for none)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models
        if args.models_commit:
            archive = subprocess.run(["git", "archive", args.models_commit, "models"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
            models = Path(tmp) / "models"
        rows = heldout_skill(models, args.metals, args.spectra)
    report = json.loads(write_report(args.out, {"bar": SKILL_BAR, "models_commit": args.models_commit,
                                                "rows": rows}).read_text())
    if args.markdown:
        replace_between(Path(args.markdown), MARKERS, "\n\n" + skill_markdown(report) + "\n\n")
    for r in rows:
        print(f"{r['metal']:2s} {r['spectrum']:5s} n {r['n']:3d}: median skill {r['as_written']['median']:.2f} as written, "
              f"{r['model_processing']['median']:.2f} as processed")


if __name__ == "__main__":
    main()
