"""Export our own FEFF10 simulations (``xanesnet simulate`` HDF5) into data/feff_extra/, one .npz per metal.

The live simulation file (``scripts/simulate_tmqm.py`` writes
``~/.cache/xanesnet/feff_extra.h5``) grows while FEFF runs; this script takes a
snapshot of its finished molecules (those with both XANES and XES) and writes
compact, committed copies so that ``scripts/train_feff_models.py`` is
reproducible from a clean checkout. Layout of ``data/feff_extra/<Metal>.npz``
(ragged arrays concatenated, with per-molecule lengths):

- ``ids`` (n,): structure names (CSD codes); ``absorber`` (n,): 0-based index;
  ``charge``, ``spin`` (n,): from the tmQM comment line (NaN if absent)
- ``n_atoms`` (n,), ``numbers`` (sum n_atoms,), ``positions`` (sum n_atoms, 3) in Angstrom
- for ``s`` in xanes, xes: ``{s}_len`` (n,), ``{s}_omega`` and ``{s}_mu`` (sum len,):
  FEFF ``xmu.dat`` columns omega (absolute energy, eV) and mu, as written;
  ``{s}_e_fermi`` (n,): FEFF's Fermi level (omega - e, eV)
- ``meta``: JSON string (FEFF version, cards, source file, export time)

    python scripts/export_feff_extra.py [--h5 ~/.cache/xanesnet/feff_extra.h5] [--out data/feff_extra]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from xanesnet.io.spectra import Spectrum
from xanesnet.io.structures import FIRST_ROW_TM, Structure
from xanesnet.simulate import SimulatedSpectrum, read_simulations

ROOT = Path(__file__).resolve().parents[1]
LIVE_H5 = Path(os.environ.get("XANESNET_CACHE") or Path.home() / ".cache" / "xanesnet") / "feff_extra.h5"
EXTRA_DIR = ROOT / "data" / "feff_extra"
SPECTRA = ("xanes", "xes")


def snapshot(h5: Path) -> dict[str, dict[str, SimulatedSpectrum]]:
    """``{spectrum: {name: SimulatedSpectrum}}`` of a simulation file and its not yet merged parts, read from a private copy.

    The running simulation is never touched: the file and its finished parts
    (complete files only; they are renamed into place) are copied and merged
    in a temporary directory.
    """
    from xanesnet.simulate.store import merge_parts, parts_dir

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / h5.name
        shutil.copyfile(h5, copy)
        if parts_dir(h5).is_dir():
            parts_dir(copy).mkdir()
            for part in parts_dir(h5).glob("*.h5"):
                try:
                    shutil.copyfile(part, parts_dir(copy) / part.name)
                except FileNotFoundError:  # merged and deleted meanwhile: it is in the copy or the next export
                    continue
            merge_parts(copy)
        return {s: {sim.structure.name: sim for sim in read_simulations(copy, spectrum=s)} for s in SPECTRA}


def export(h5: Path, out: Path) -> dict[str, int]:
    """Write ``out/<Metal>.npz`` for every metal with finished molecules; return the count per metal."""
    sims = snapshot(h5)
    names = sorted(set(sims["xanes"]) & set(sims["xes"]))
    by_metal: dict[str, list[str]] = defaultdict(list)
    for name in names:
        sim = sims["xanes"][name]
        by_metal[sim.structure.symbols[sim.absorber]].append(name)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for metal in FIRST_ROW_TM:
        if not by_metal.get(metal):
            continue
        first = sims["xanes"][by_metal[metal][0]].spectrum.meta
        meta = {"what": f"FEFF10 K-edge XANES and K-beta XES of {metal} complexes from tmQM, simulated by xanesnet",
                "feff_version": first.get("feff_version", ""),
                "cards_xanes": sims["xanes"][by_metal[metal][0]].spectrum.meta.get("cards", ""),
                "cards_xes": sims["xes"][by_metal[metal][0]].spectrum.meta.get("cards", ""),
                "source": str(h5), "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _write(out / f"{metal}.npz", [sims["xanes"][n] for n in by_metal[metal]],
               {s: [sims[s][n] for n in by_metal[metal]] for s in SPECTRA}, meta)
        counts[metal] = len(by_metal[metal])
    return counts


def _write(path: Path, mols: list[SimulatedSpectrum], spectra: dict[str, list[SimulatedSpectrum]], meta: dict) -> None:
    arrays: dict[str, np.ndarray] = {
        "ids": np.array([m.structure.name for m in mols]),
        "absorber": np.array([m.absorber for m in mols], dtype=np.int32),
        "charge": np.array([np.nan if m.structure.charge is None else m.structure.charge for m in mols]),
        "spin": np.array([np.nan if m.structure.spin is None else m.structure.spin for m in mols]),
        "n_atoms": np.array([len(m.structure) for m in mols], dtype=np.int32),
        "numbers": np.concatenate([m.structure.numbers for m in mols]).astype(np.int16),
        "positions": np.vstack([m.structure.positions for m in mols]),
        "meta": np.array(json.dumps(meta)),
    }
    for s, sims in spectra.items():
        table = [sim.spectrum.meta["table"] for sim in sims]
        cols = sims[0].spectrum.meta["columns"]
        omega, e, mu = cols.index("omega"), cols.index("e"), cols.index("mu")
        arrays[f"{s}_len"] = np.array([len(t) for t in table], dtype=np.int32)
        arrays[f"{s}_omega"] = np.concatenate([t[:, omega] for t in table])
        arrays[f"{s}_mu"] = np.concatenate([t[:, mu] for t in table])
        arrays[f"{s}_e_fermi"] = np.array([float(np.median(t[:, omega] - t[:, e])) for t in table])
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def read_feff_extra(path: str | os.PathLike, spectrum: str) -> list[SimulatedSpectrum]:
    """The molecules of one exported ``<Metal>.npz`` with their raw ``spectrum`` (``xanes`` or ``xes``)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta"]))
        atoms = np.concatenate([[0], np.cumsum(d["n_atoms"])])
        points = np.concatenate([[0], np.cumsum(d[f"{spectrum}_len"])])
        out = []
        for k, name in enumerate(d["ids"]):
            name = str(name)
            a, b = atoms[k], atoms[k + 1]
            charge, spin = float(d["charge"][k]), float(d["spin"][k])
            structure = Structure(name=name, numbers=d["numbers"][a:b].astype(np.int64), positions=d["positions"][a:b],
                                  charge=None if np.isnan(charge) else charge, spin=None if np.isnan(spin) else spin,
                                  source=f"{path}:{name}")
            p, q = points[k], points[k + 1]
            spec = Spectrum(name=name, energy=d[f"{spectrum}_omega"][p:q].copy(), intensity=d[f"{spectrum}_mu"][p:q].copy(),
                            source=f"{path}:{name}/{spectrum}",
                            meta={"e_fermi": float(d[f"{spectrum}_e_fermi"][k]), "feff_version": meta.get("feff_version", ""),
                                  "cards": meta.get(f"cards_{spectrum}", "")})
            out.append(SimulatedSpectrum(structure=structure, absorber=int(d["absorber"][k]), spectrum=spec))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5", type=Path, default=LIVE_H5)
    ap.add_argument("--out", type=Path, default=EXTRA_DIR)
    args = ap.parse_args()
    counts = export(args.h5, args.out)
    size = sum(p.stat().st_size for p in args.out.glob("*.npz"))
    print(f"exported {sum(counts.values())} molecules ({', '.join(f'{m} {n}' for m, n in counts.items())}) "
          f"to {args.out}, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
