"""Store a saved model's weights as float16 (half the size) where that moves no prediction by 1e-3 of its RMS.

The change is measured against the float32 weights on probe molecules: the
FDMNES Fe sample (``../shared/data/fe_k_fdmnes_sample``, 99 complexes) for Fe
models, and the example molecules of the model's element (``data/examples``).
The result goes into the model's config (``float16_check``); a model over the
tolerance (:data:`xanesnet.pipeline.FLOAT16_TOLERANCE`) is left as it is.
Converting twice changes nothing (float16 weights round to themselves).

    python scripts/float16_weights.py models/fe-k-xanes [...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xanesnet.experiments import ROOT, shared_root

from xanesnet.bundle import load_bundle, save_bundle
from xanesnet.io.structures import find_structure_files, read_structure, resolve_absorber
from xanesnet.pipeline import FLOAT16_TOLERANCE, float16_change

SHARED = shared_root()

EXAMPLES = ROOT / "data" / "examples"


def probe_molecules(element: str | None, shared: Path = SHARED) -> list[tuple[str, object, int]]:
    """``(name, structure, absorber)`` of the probe molecules for a model of ``element``."""
    out = []
    for path in find_structure_files([EXAMPLES]):
        s = read_structure(path)
        if element in s.symbols:
            out.append((f"examples/{path.stem}", s, resolve_absorber(s, element)))
    sample = shared / "fe_k_fdmnes_sample" / "xyz"
    if element == "Fe" and sample.is_dir():
        for path in find_structure_files([sample]):
            out.append((f"fe_k_fdmnes_sample/{path.stem}", read_structure(path), 0))
    return out


def convert(model: Path, shared: Path = SHARED) -> dict:
    bundle = load_bundle(model)
    config = bundle.config
    probes = probe_molecules(config.get("element"), shared)
    x = np.vstack([bundle.descriptor.create(s, a) for _, s, a in probes])
    change = float16_change(config, bundle.members, x)
    check = {"max_change_over_rms": change, "tolerance": FLOAT16_TOLERANCE, "n_spectra": len(probes),
             "probes": sorted({name.split("/")[0] for name, _, _ in probes})}
    if change < FLOAT16_TOLERANCE and config.get("weights_dtype") != "float16":
        before = (model / "weights.pt").stat().st_size
        save_bundle(model, {**config, "float16_check": check}, bundle.members, weights_dtype="float16")
        check["bytes"] = [before, (model / "weights.pt").stat().st_size]
    return check


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--shared", type=Path, default=SHARED, help="the reference data directory (../shared/data)")
    args = ap.parse_args()
    for model in args.models:
        check = convert(model, args.shared)
        size = f"; weights {check['bytes'][0] / 1e6:.1f} -> {check['bytes'][1] / 1e6:.1f} MB" if "bytes" in check else "; unchanged"
        print(f"{model}: largest change {check['max_change_over_rms']:.2e} of the spectrum RMS on {check['n_spectra']} "
              f"probe spectra (tolerance {FLOAT16_TOLERANCE:g}){size}")


if __name__ == "__main__":
    main()
