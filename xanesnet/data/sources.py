"""Where training data come from: structure and spectrum files paired by name, simulation data sets, feature files.

Each source ends in a :class:`TrainingSet` (features, spectra on one grid,
names, and what was skipped), which the workflows in :mod:`xanesnet.pipeline`
train and evaluate on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xanesnet.data.dataset import SPECTRUM_SUFFIXES, Pairing, featurize_files, list_files, load_spectra, pair_by_stem
from xanesnet.descriptors import descriptor_from_dict
from xanesnet.errors import XanesnetError
from xanesnet.io.structures import resolve_absorber

if TYPE_CHECKING:  # pragma: no cover
    from xanesnet.config import Config

logger = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Features and spectra ready to fit, with where they came from."""

    ids: list[str]
    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray
    pairing: Pairing | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    elements: list[str] | None = None  # the absorber's element per molecule, where known
    descriptor: dict[str, Any] | None = None  # settings the features were made with, where known
    feature_names: list[str] | None = None


def build_training_set(xyz_dir: str | os.PathLike, spectra_dir: str | os.PathLike, config: Config, *,
                       absorber: int | str | None = None, spectrum_format: str | None = None,
                       cache: str | os.PathLike | None = None, skip_bad: bool = False,
                       progress: bool = False) -> TrainingSet:
    """Pair structures with spectra by name, featurise, and stack the spectra on one grid."""
    from xanesnet.io.structures import find_structure_files

    pairing = pair_by_stem(find_structure_files([xyz_dir]), list_files(spectra_dir, SPECTRUM_SUFFIXES))
    if pairing.structures_only or pairing.spectra_only:
        logger.info("unmatched files:\n%s", pairing.report())
    descriptor = descriptor_from_dict(config.descriptor)
    feats = featurize_files(pairing.structures, descriptor, absorber=absorber, cache=cache, skip_bad=skip_bad,
                            progress=progress)
    kept = set(feats.ids)
    spectra = [p for s, p in zip(pairing.stems, pairing.spectra) if s in kept]
    energy, y = load_spectra(spectra, fmt=spectrum_format, process=spectrum_processor(config), progress=progress)
    from xanesnet.io.structures import absorber_element, read_structure

    elements = [absorber_element(read_structure(p), absorber) for s, p in zip(pairing.stems, pairing.structures) if s in kept]
    return TrainingSet(ids=feats.ids, x=feats.x, y=y, energy=energy, pairing=pairing, skipped=feats.skipped,
                       elements=elements)


def build_training_set_from_simulations(dataset: str | os.PathLike, config: Config, *, target: str = "xanes",
                                        absorber: int | str | None = None, elements: Sequence[str] | None = None,
                                        skip_bad: bool = False, progress: bool = False) -> TrainingSet:
    """Features and processed spectra from an ``xanesnet simulate`` HDF5 data set.

    ``elements`` keeps only molecules whose absorber is one of these elements
    (e.g. ``["Fe"]``); FEFF spectra come on per-molecule grids, so the config's
    ``spectra`` section should set a common ``grid``.
    """
    from ase.data import chemical_symbols

    from xanesnet.data.dataset import stack_spectra
    from xanesnet.simulate import read_simulations

    descriptor = descriptor_from_dict(config.descriptor)
    ids, rows, spectra, skipped, found = [], [], [], [], []
    wanted = None if elements is None else {e.capitalize() for e in elements}
    for sim in read_simulations(dataset, spectrum=target):
        s = sim.structure
        a = sim.absorber if absorber is None else resolve_absorber(s, absorber)
        if wanted is not None and chemical_symbols[s.numbers[a]] not in wanted:
            continue
        try:
            rows.append(descriptor.create(s, a))
        except XanesnetError as exc:
            if not skip_bad:
                raise
            skipped.append((s.name, str(exc)))
            continue
        ids.append(s.name)
        found.append(chemical_symbols[s.numbers[a]])
        spectra.append(sim.spectrum)
    if not ids:
        raise XanesnetError(f"no {target} spectra{' for ' + ', '.join(sorted(wanted)) if wanted else ''} in the data set", path=dataset)
    energy, y = stack_spectra(spectra, process=spectrum_processor(config))
    return TrainingSet(ids=ids, x=np.vstack(rows), y=y, energy=energy, skipped=skipped, elements=found)


def load_feature_file(path: str | os.PathLike, *, need_y: bool = True) -> TrainingSet:
    """Prebuilt features: an ``.npz`` with arrays ``x``, ``y`` and optionally ``energy``, ``ids``, ``feature_names``
    and ``settings`` (as ``xanesnet featurize`` writes them; ``y`` is optional with ``need_y=False``, for predicting)."""
    path = Path(path)
    if not path.is_file():
        raise XanesnetError("no such file", path=path)
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise XanesnetError(f"not a readable .npz file ({exc})", path=path) from None
    for key in ("x", "y") if need_y else ("x",):
        if key not in data:
            raise XanesnetError(f"missing array {key!r} (has: {', '.join(data.files)})", path=path)
    x = np.asarray(data["x"], float)
    y = np.asarray(data["y"], float) if "y" in data else None
    if x.ndim != 2 or (y is not None and (y.ndim != 2 or len(x) != len(y))):
        raise XanesnetError(f"x and y must be 2-D with equal rows, got {x.shape} and {None if y is None else y.shape}", path=path)
    energy = (np.asarray(data["energy"], float) if "energy" in data
              else np.arange(y.shape[1], dtype=float) if y is not None else None)
    ids = [str(i) for i in data["ids"]] if "ids" in data else [f"row{i}" for i in range(len(x))]
    import json

    settings = json.loads(str(data["settings"])) if "settings" in data else None
    names = [str(n) for n in data["feature_names"]] if "feature_names" in data else None
    return TrainingSet(ids=ids, x=x, y=y, energy=energy, descriptor=settings, feature_names=names)


def spectrum_processor(config: Config):
    """The spectrum processing the config asks for, or ``None`` (spectra must share one grid)."""
    if config.spectra is None:
        return None
    from xanesnet.spectra import processor_from_dict

    return processor_from_dict(config.spectra)
