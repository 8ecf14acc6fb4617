"""Re-record the reference predictions of retrained shipped models (``tests/data/shipped_predictions.json``).

``tests/test_contract.py`` checks that every shipped model still predicts
its example molecule as recorded; a model whose weights changed (another
``weights_sha256``) is skipped there until its reference is recorded again
with this script, after the retrained model has been checked:

    python scripts/record_shipped_predictions.py            # every model whose weights changed
    python scripts/record_shipped_predictions.py --all      # every model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xanesnet.atomic import write_text
from xanesnet.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "tests" / "data" / "shipped_predictions.json"


def _digits(values) -> list[float]:
    """Seven significant digits: well inside the test's tolerance (1e-5 relative)."""
    return [float(f"{v:.7g}") for v in values]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="re-record every model, not only those whose weights changed")
    args = ap.parse_args()
    refs = json.loads(REFERENCES.read_text())
    for name, ref in sorted(refs.items()):
        model = ROOT / "models" / name
        sha = json.loads((model / "config.json").read_text())["weights_sha256"]
        if sha == ref["weights_sha256"] and not args.all:
            continue
        pred, _ = Predictor.from_bundle(model).predict_files([ROOT / "data" / "examples" / ref["structure"]])
        refs[name] = {"weights_sha256": sha, "structure": ref["structure"], "mean": _digits(pred.mean[0]),
                      "std": _digits(pred.std[0]), "trusted": bool(pred.trusted[0])}
        print(f"{name}: recorded ({ref['structure']})")
    write_text(REFERENCES, json.dumps(refs, indent=0) + "\n")


if __name__ == "__main__":
    main()
