"""Add our own finished FEFF10 simulations to data/feff_extra/<Metal>.npz, keeping every molecule already there.

The live simulation file (``scripts/simulate_tmqm.py`` writes
``~/.cache/xanesnet/feff_extra.h5``) grows while FEFF runs; this script takes a
private snapshot of its finished molecules (both XANES and XES) and merges
them into the committed copies by name (``xanesnet.data.feff.export``), so a
simulation file on a new machine, holding only the latest runs, adds to the
data set and never shrinks it. Layout of the files: data/feff_extra/README.md;
read them with ``xanesnet.data.feff.read_feff_extra``.

    python scripts/export_feff_extra.py [--h5 ~/.cache/xanesnet/feff_extra.h5] [--out data/feff_extra]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xanesnet.data.feff import EXTRA_DIR, export, live_simulation_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5", type=Path, default=live_simulation_file())
    ap.add_argument("--out", type=Path, default=EXTRA_DIR)
    args = ap.parse_args()
    counts = export(args.h5, args.out)
    size = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    added = sum(c["added"] for c in counts.values())
    total = sum(c["total"] for c in counts.values())
    print(f"added {added} molecules ({', '.join(f'{m} +{c['added']}' for m, c in counts.items() if c['added'])}); "
          f"{total} in all ({', '.join(f'{m} {c['total']}' for m, c in counts.items())}) in {args.out}, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
