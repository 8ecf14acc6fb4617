"""Add our own finished FEFF10 simulations to data/feff_extra (a new <Metal>.<k>.npz each), keeping every file already there.

The live simulation file (``scripts/simulate_tmqm.py`` writes
``~/.cache/xanesnet/feff_extra.h5``) grows while FEFF runs; this script takes a
private snapshot of its finished molecules (both XANES and XES) and merges
the new ones into the committed set by name (``xanesnet.data.feff.export``), so a
simulation file on a new machine, holding only the latest runs, adds to the
data set and never shrinks it. The new files store each geometry as a digest
of the tmQM file it came from (``../shared/data/tmqm_3d.tar.gz``, unpacked
once), which must be here. Layout of the files: data/feff_extra/README.md;
read them with ``xanesnet.data.feff.read_extra``.

With ``--summary FILE.json`` it also records what the simulation file holds
per metal (finished molecules, failures by error, FEFF seconds;
``xanesnet.data.feff.campaign_summary``) and the counts after the merge,
stamped with the commit (docs/feff_campaign.json for the report).

    python scripts/export_feff_extra.py [--h5 ~/.cache/xanesnet/feff_extra.h5] [--out data/feff_extra] [--summary FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xanesnet.data.feff import EXTRA_DIR, campaign_summary, export, live_simulation_file, tmqm_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5", type=Path, default=live_simulation_file())
    ap.add_argument("--out", type=Path, default=EXTRA_DIR)
    ap.add_argument("--summary", type=Path, default=None, help="also write what the campaign produced to this JSON file")
    args = ap.parse_args()
    counts = export(args.h5, args.out, geometries=tmqm_dir())
    size = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    added = sum(c["added"] for c in counts.values())
    total = sum(c["total"] for c in counts.values())
    new = ", ".join(f"{m} +{c['added']}" for m, c in counts.items() if c["added"])
    every = ", ".join(f"{m} {c['total']}" for m, c in counts.items())
    print(f"added {added} molecules ({new or 'none'}); {total} in all ({every}) in {args.out}, {size / 1e6:.2f} MB")
    if args.summary is not None:
        import json
        import time

        from xanesnet.experiments import git_commit

        campaign = campaign_summary(args.h5)
        report = {"commit": git_commit(), "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "simulation_file": campaign, "export": counts, "npz_bytes": size,
                  "totals": {"done": sum(m["done"] for m in campaign.values()),
                             "failed": sum(sum(m["failed"].values()) for m in campaign.values()),
                             "feff_run_hours": sum(m["seconds"] for m in campaign.values()) / 3600}}
        args.summary.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.summary}")


if __name__ == "__main__":
    main()
