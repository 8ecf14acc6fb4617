"""The shipped FEFF models on the example molecules: textbook geometries that are in no training set.

The training data of the ``-feff`` models are tmQM complexes (large, mostly
organometallic). The molecules in ``data/examples/`` were built from textbook
geometries (``scripts/make_examples.py``): small, symmetric ions and
carbonyls. Their FEFF10 reference spectra are our own runs with the same
cards as the training data, committed in ``data/feff_examples/examples.h5``:

    xanesnet simulate data/examples --spectrum both --out data/feff_examples/examples.h5

Each reference goes through the model's own processing (broadening, grid);
the score is the MSE relative to that of the model's mean training spectrum
(below 1: better than knowing nothing about the molecule). Writes
``docs/examples_feff.md`` and ``.json``.

    python scripts/check_examples.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xanesnet.analysis.examples import check, summary, write_report
from xanesnet.experiments import ROOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args()
    rows = check()
    write_report(rows, Path(args.out))
    print(json.dumps(summary(rows), indent=1))


if __name__ == "__main__":
    main()
