"""Simulate FEFF10 XANES and XES for tmQM complexes not yet in the reference set feff_3d.

Extracts ``tmqm_3d.tar.gz`` into a scratch directory (once), leaves out every
complex already in ``feff_3d`` (computed or listed as failed), orders the rest
round-robin over the nine metals (each metal's list shuffled with ``--seed``)
and runs :func:`xanesnet.simulate.simulate`. Rerunning the same command
continues where the last run stopped.

Example (one worker, in the background)::

    nohup python scripts/simulate_tmqm.py > ~/.cache/xanesnet/sim.log 2>&1 &
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from xanesnet.data.feff import TMQM_ARCHIVE, tmqm_dir
from xanesnet.experiments import cache_dir, shared_root
from xanesnet.io.structures import FIRST_ROW_TM
from xanesnet.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_root()
CACHE = cache_dir()
logger = logging.getLogger("simulate_tmqm")


def already_simulated(feff_dir: Path) -> set[str]:
    """CSD codes in ``feff_3d``: computed (``index.tsv``) or known to crash FEFF (``failed.txt``)."""
    codes = set()
    lines = (feff_dir / "index.tsv").read_text().splitlines()[1:]
    codes.update(line.split("\t")[0] for line in lines if line.strip())
    failed = feff_dir / "failed.txt"
    if failed.is_file():
        codes.update(line.split()[0] for line in failed.read_text().splitlines() if line.strip())
    return codes


def round_robin(tmqm: Path, exclude: set[str], seed: int, reserved: range = range(0)) -> list[Path]:
    """Files per metal, each list shuffled with ``seed``, interleaved metal by metal.

    ``reserved`` positions of each metal's shuffled list (simulated elsewhere)
    are left out after shuffling, so the positions of the others do not move.
    """
    rng = np.random.default_rng(seed)
    per_metal = []
    for metal in FIRST_ROW_TM:
        files = sorted(p for p in (tmqm / metal).glob("*.xyz") if p.stem not in exclude)
        shuffled = [files[i] for i in rng.permutation(len(files))]
        per_metal.append([f for k, f in enumerate(shuffled) if k not in reserved])
    order = []
    for k in range(max(map(len, per_metal))):
        order.extend(files[k] for files in per_metal if k < len(files))
    return order


def exported(extra_dir: Path) -> set[str]:
    """Names already simulated and committed (``data/feff_extra/<Metal>[.<k>].npz``): no need to run them again."""
    names: set[str] = set()
    for path in sorted(extra_dir.glob("*.npz")):
        with np.load(path, allow_pickle=False) as d:
            names.update(str(n) for n in d["ids"])
    return names


def parse_range(text: str) -> range:
    """``"400:700"`` -> ``range(400, 700)``; ``""`` -> an empty range."""
    if not text:
        return range(0)
    start, stop = (int(v) for v in text.split(":"))
    return range(start, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=DATA / TMQM_ARCHIVE)
    parser.add_argument("--feff-dir", type=Path, default=DATA / "feff_3d", help="reference set to leave out")
    parser.add_argument("--scratch", type=Path, default=CACHE, help="where tmqm_3d/ is extracted")
    parser.add_argument("--out", type=Path, default=CACHE / "feff_extra.h5")
    parser.add_argument("--spectrum", default="both", choices=["xanes", "xes", "both"])
    parser.add_argument("--reserved", type=parse_range, default=range(400, 700),
                        help="positions START:STOP of each metal's shuffled list to leave out (simulated elsewhere: "
                             "feff_3d_more holds positions 400-699 of the seed-0 order)")
    parser.add_argument("--extra-dir", type=Path, default=ROOT / "data" / "feff_extra",
                        help="committed exports whose molecules are not simulated again")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N complexes of the order")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per FEFF stage")
    parser.add_argument("--merge-every", type=int, default=100,
                        help="merge finished complexes into --out after this many (each merge copies the file)")
    parser.add_argument("--nice", type=int, default=10, help="lower this process's CPU priority by N")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.nice:
        os.nice(args.nice)
    if ROOT in args.scratch.resolve().parents or args.scratch.resolve() == ROOT:
        parser.error("--scratch must be outside the repository")
    tmqm = tmqm_dir(args.archive, args.scratch)
    order = round_robin(tmqm, already_simulated(args.feff_dir), args.seed, args.reserved)
    done = exported(args.extra_dir)
    order = [p for p in order if p.stem not in done]
    if args.limit is not None:
        order = order[: args.limit]
    logger.info("%d complexes in the order (seed %d) -> %s", len(order), args.seed, args.out)
    summary = simulate(order, args.out, spectrum=args.spectrum, workers=args.workers, timeout=args.timeout,
                       merge_every=args.merge_every)
    logger.info("%s", summary)


if __name__ == "__main__":
    main()
