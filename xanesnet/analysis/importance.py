"""Which descriptor features a model relies on, and where in the spectrum: permutation importance by window.

The importance of a feature (or of a group of features) in an energy window
is the increase in mean squared error of the predicted spectra over that
window when the feature's column is scrambled across molecules (all columns of
a group with one shared permutation), averaged over ``n_repeats`` shuffles.
Units are those of the MSE (intensity squared). The error is measured
against reference spectra, or, when none are given, against the model's own
unscrambled prediction: that measures how much the prediction moves (the
model's sensitivity), not its accuracy.

The shuffling, repeats and scoring are :func:`sklearn.inspection.permutation_importance`:
it sees an index matrix with one column per feature or group, each holding
row numbers into the feature matrix, and an adapter whose ``predict`` rebuilds
the features from those row numbers and calls the model. Scrambling a column
of row numbers scrambles that feature (or every column of that group with one
permutation), and one scoring call returns the MSE of every window at once,
so each scrambled data set is predicted once for all windows.

Default windows (:func:`default_windows`): the grid is split at the mean
energy of the main peak (the global maximum) of the reference spectra (or of
the predictions when no references are given): ``edge`` runs from the start
of the grid to the split (pre-edge, rising edge, up to the white-line
maximum), ``post-edge`` from the split to the end of the grid.

Correlated features share credit: scrambling one G2 Gaussian leaves its
overlapping neighbours (and the element channels at the same distance)
intact, so single-feature importances understate what a whole family carries;
the family groups (``all G2``, ``all G4``, ``all element G2``, ``all angular
pairs``, ``all first shell``, ``all donor environments``) show that.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from xanesnet.errors import XanesnetError

if TYPE_CHECKING:  # pragma: no cover
    from xanesnet.predict import Predictor

logger = logging.getLogger(__name__)

#: Radial channels in the model's inputs: family -> channel -> (columns, centres in Angstrom); see
#: :meth:`~xanesnet.descriptors.base.Descriptor.radial_channels`.
RadialChannels = dict[str, dict[str, tuple[list[int], list[float]]]]


# --- windows ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """An energy window ``e_min <= E <= e_max`` (eV), both ends included."""

    name: str
    e_min: float
    e_max: float

    def __str__(self) -> str:
        return f"{self.name}:{self.e_min:g}:{self.e_max:g}"

    def mask(self, energy: np.ndarray) -> np.ndarray:
        tol = 1e-9 * max(1.0, float(np.abs(energy).max()))
        return (energy >= self.e_min - tol) & (energy <= self.e_max + tol)


def parse_window(text: str) -> Window:
    """A window from ``NAME:EMIN:EMAX`` (energies in eV), e.g. ``edge:7097:7132``."""
    parts = str(text).split(":")
    malformed = f"malformed window {text!r}: expected NAME:EMIN:EMAX with energies in eV, e.g. edge:7100:7135"
    if len(parts) != 3 or not parts[0].strip():
        raise XanesnetError(malformed)
    try:
        e_min, e_max = float(parts[1]), float(parts[2])
    except ValueError:
        raise XanesnetError(malformed) from None
    if not (np.isfinite(e_min) and np.isfinite(e_max)) or e_min >= e_max:
        raise XanesnetError(f"malformed window {text!r}: EMIN must be below EMAX")
    return Window(parts[0].strip(), e_min, e_max)


def check_windows(windows: Sequence[Window | str], energy: np.ndarray) -> list[Window]:
    """Parse and validate windows against a model's energy grid (eV)."""
    energy = np.asarray(energy, float)
    out: list[Window] = []
    for w in windows:
        w = parse_window(w) if isinstance(w, str) else w
        if w.e_min >= w.e_max:
            raise XanesnetError(f"malformed window {str(w)!r}: EMIN must be below EMAX")
        tol = 1e-9 * max(1.0, float(np.abs(energy).max()))
        if w.e_min < energy[0] - tol or w.e_max > energy[-1] + tol:
            raise XanesnetError(f"window {w.name!r} ({w.e_min:g}-{w.e_max:g} eV) is outside the model's grid "
                                f"({energy[0]:g}-{energy[-1]:g} eV)")
        n = int(w.mask(energy).sum())
        if n < 3:
            raise XanesnetError(f"window {w.name!r} ({w.e_min:g}-{w.e_max:g} eV) holds {n} grid point(s) of the model; "
                                "at least 3 are needed")
        if any(o.name == w.name for o in out):
            raise XanesnetError(f"window name {w.name!r} is used twice")
        out.append(w)
    if not out:
        raise XanesnetError("no windows given")
    return out


def default_windows(energy: np.ndarray, spectra: np.ndarray) -> list[Window]:
    """``edge`` and ``post-edge``, split at the mean main-peak energy of ``spectra`` (n, points) on ``energy`` (eV)."""
    from xanesnet.analysis.metrics import main_peak

    energy = np.asarray(energy, float)
    split = float(np.nanmean(main_peak(energy, np.atleast_2d(spectra))[0]))
    split = round(split, 2)
    return check_windows([Window("edge", float(energy[0]), split), Window("post-edge", split, float(energy[-1]))], energy)


# --- feature groups --------------------------------------------------------------------------------------------------
def feature_groups(predictor: "Predictor") -> dict[str, list[int]]:
    """Group name -> feature columns of a model's inputs, as its descriptor defines them
    (:meth:`~xanesnet.descriptors.base.Descriptor.feature_groups`); one group per feature for prebuilt features."""
    cfg = predictor.bundle.config
    if cfg.get("descriptor"):
        return predictor.bundle.descriptor.feature_groups()
    return {name: [i] for i, name in enumerate(cfg["feature_names"])}


def radial_channels(predictor: "Predictor") -> RadialChannels:
    """The radial channels of a model's descriptor (none for prebuilt features)."""
    return predictor.bundle.descriptor.radial_channels() if predictor.bundle.config.get("descriptor") else {}


def centre_groups(groups: dict[str, list[int]], radial: RadialChannels) -> dict[str, list[str]]:
    """Radial channel -> the names of its one-column groups (one per centre, e.g. wACSF's single G2 Gaussians)."""
    single = {c[0]: g for g, c in groups.items() if len(c) == 1}
    out = {}
    for channels in radial.values():
        for channel, (cols, _) in channels.items():
            names = [single[c] for c in cols if c in single]
            if len(names) > 1:
                out[channel] = names
    return out


def select_groups(groups: dict[str, list[int]], names: Sequence[str] | None, *,
                  radial: RadialChannels | None = None) -> dict[str, list[int]]:
    """The groups named in ``names`` (all when ``None``); an unknown name is an error listing the known ones (the
    one-column groups of a radial channel as one range)."""
    if names is None:
        return dict(groups)
    for n in names:
        if n not in groups:
            centres = centre_groups(groups, radial or {})
            hidden = {g for gs in centres.values() for g in gs}
            known = [g for g in groups if g not in hidden]
            for channel, gs in reversed(centres.items()):
                known.insert(1 if "G1" in groups else 0, f"{gs[0]} .. {gs[-1]} ({len(gs)} {channel} centres)")
            raise XanesnetError(f"unknown feature group {n!r}; known: {', '.join(known)}")
    return {n: groups[n] for n in dict.fromkeys(names)}


def g2_centres(result: "Importance") -> tuple[np.ndarray, np.ndarray]:
    """Columns and centres ``mu`` (Angstrom) of the Z-weighted G2 features (empty when the model has none)."""
    cols, mu = result.radial.get("all G2", {}).get("G2", ([], []))
    return np.array(cols, int), np.array(mu, float)


def element_centres(result: "Importance") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Element channel -> (columns, centres ``mu`` in Angstrom) of the element-resolved G2 features."""
    return {k: (np.array(c, int), np.array(mu, float)) for k, (c, mu) in result.radial.get("all element G2", {}).items()}


# --- the computation -------------------------------------------------------------------------------------------------
class RowPermutationModel:
    """Estimator-like adapter that lets :func:`sklearn.inspection.permutation_importance` scramble groups of columns.

    ``predict`` takes an index matrix (n, n_units): column ``u`` holds row
    numbers into ``x`` for the feature columns ``units[u]``. Unscrambled
    columns hold ``0..n-1``; a scrambled one picks that unit's values from
    other molecules. Returns the predicted spectra (n, points).

    Parameters
    ----------
    predict
        Feature matrix (n, n_features) -> spectra (n, points).
    x
        The unscrambled features.
    units
        Feature columns scrambled together, one entry per column of the index matrix.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, units: Sequence[Sequence[int]], *,
                 progress: Any = None):
        self.predict_fn = predict
        self.x = np.asarray(x, float)
        self.units = [np.asarray(u, int) for u in units]
        self.progress = progress

    def index_matrix(self) -> np.ndarray:
        """The unscrambled input: every column ``0..n-1``."""
        return np.tile(np.arange(len(self.x))[:, None], (1, len(self.units)))

    def fit(self, X: np.ndarray | None = None, y: np.ndarray | None = None) -> "RowPermutationModel":
        """Nothing to fit: the model is already trained (here for sklearn's estimator checks)."""
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        rows = np.asarray(X, int)
        if rows.shape != (len(self.x), len(self.units)):
            raise ValueError(f"index matrix must be {(len(self.x), len(self.units))}, got {rows.shape}")
        x = self.x.copy()
        scrambled = np.flatnonzero(np.any(rows != np.arange(len(self.x))[:, None], axis=0))
        for u in scrambled:
            cols = self.units[u]
            x[:, cols] = self.x[rows[:, u][:, None], cols]
        if self.progress is not None:
            self.progress.update(1)
        return self.predict_fn(x)


def window_scorer(energy: np.ndarray, windows: Sequence[Window]) -> Callable[[Any, np.ndarray, np.ndarray], dict[str, float]]:
    """sklearn ``scoring=`` callable: ``-MSE`` of the predicted spectra in each window (higher is better)."""
    masks = {w.name: w.mask(np.asarray(energy, float)) for w in windows}

    def score(estimator: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        sq = (estimator.predict(X) - y) ** 2
        return {name: -float(sq[:, m].mean()) for name, m in masks.items()}

    return score


@dataclass
class Importance:
    """Permutation importance per window: increase in MSE (intensity squared) over ``n_repeats`` shuffles.

    ``features[window]`` is (n_features, n_repeats) and ``groups[window]``
    (n_groups, n_repeats), in the order of ``feature_names`` and
    ``group_columns``; :meth:`mean` and :meth:`std` summarise the repeats.
    """

    windows: list[Window]
    energy: np.ndarray
    feature_names: list[str]
    group_columns: dict[str, list[int]]
    baseline_mse: dict[str, float]
    features: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]
    ids: list[str]
    n_repeats: int
    seed: int
    reference: str  # "spectra" or "model mean"
    model: str | None = None
    distances: np.ndarray | None = field(default=None, repr=False)  # absorber-neighbour distances (Angstrom)
    neighbours: np.ndarray | None = field(default=None, repr=False)  # their atomic numbers
    n_molecules_distances: int | None = None
    neighbour_classes: dict[str, tuple[int, ...]] | None = None  # histogram colours: the model's element channels
    radial: RadialChannels = field(default_factory=dict, repr=False)  # the descriptor's radial channels (plots by distance)

    def mean(self, window: str, level: str = "features") -> np.ndarray:
        return getattr(self, level)[window].mean(1)

    def std(self, window: str, level: str = "features") -> np.ndarray:
        return getattr(self, level)[window].std(1)

    def ranking(self, window: str, level: str = "features") -> list[tuple[str, float, float]]:
        """(name, mean, std), most important first."""
        names = self.feature_names if level == "features" else list(self.group_columns)
        mean, std = self.mean(window, level), self.std(window, level)
        return [(names[i], float(mean[i]), float(std[i])) for i in np.argsort(-mean, kind="stable")]

    def table(self, level: str = "features") -> list[dict[str, Any]]:
        """One row per window and feature (or group): window, e_min, e_max, name, columns, mean, std, baseline."""
        names = self.feature_names if level == "features" else list(self.group_columns)
        rows = []
        for w in self.windows:
            mean, std = self.mean(w.name, level), self.std(w.name, level)
            for i, name in enumerate(names):
                rows.append({"window": w.name, "e_min_ev": w.e_min, "e_max_ev": w.e_max, "name": name,
                             "n_columns": 1 if level == "features" else len(self.group_columns[name]),
                             "importance_mean": float(mean[i]), "importance_std": float(std[i]),
                             "baseline_mse": self.baseline_mse[w.name]})
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON form: settings, baselines, and mean, std and every repeat per window."""
        return {
            "definition": "increase in MSE over the window when the column(s) are scrambled across molecules",
            "model": self.model,
            "reference": self.reference,
            "seed": self.seed,
            "n_repeats": self.n_repeats,
            "n_molecules": len(self.ids),
            "ids": list(self.ids),
            "windows": [{"name": w.name, "e_min_ev": w.e_min, "e_max_ev": w.e_max,
                         "n_points": int(w.mask(self.energy).sum()), "baseline_mse": self.baseline_mse[w.name]}
                        for w in self.windows],
            "feature_names": list(self.feature_names),
            "groups": {k: [self.feature_names[c] for c in v] for k, v in self.group_columns.items()},
            "features": {w: {"mean": v.mean(1).tolist(), "std": v.std(1).tolist(), "repeats": v.tolist()}
                         for w, v in self.features.items()},
            "grouped": {w: {"mean": v.mean(1).tolist(), "std": v.std(1).tolist(), "repeats": v.tolist()}
                        for w, v in self.groups.items()},
        }


def permutation_importance_by_window(predictor: "Predictor", x: np.ndarray, y: np.ndarray | None = None, *,
                                     windows: Sequence[Window | str] | None = None, groups: Sequence[str] | None = None,
                                     n_repeats: int = 5, seed: int | None = None, ids: Sequence[str] | None = None,
                                     progress: bool = False) -> Importance:
    """Permutation importance of every feature and feature group of a model, per energy window.

    Parameters
    ----------
    predictor
        A :class:`xanesnet.predict.Predictor` (its ensemble mean is scored).
    x
        Descriptor vectors (n, n_features) of the molecules to scramble across.
    y
        Reference spectra (n, points) on the model's grid; ``None`` scores
        against the model's own unscrambled prediction (sensitivity).
    windows
        :class:`Window` objects or ``NAME:EMIN:EMAX`` strings (eV); default
        :func:`default_windows`.
    groups
        Names of the feature groups to score (see :func:`feature_groups`);
        default all. Every single feature is always scored.
    n_repeats
        Shuffles per feature or group; the std over them is reported.
    seed
        Drives every shuffle; drawn (and recorded) when ``None``.
    """
    from sklearn.inspection import permutation_importance
    from tqdm.auto import tqdm

    energy = np.asarray(predictor.energy, float)
    names = list(predictor.bundle.config["feature_names"])
    x = np.atleast_2d(np.asarray(x, float))
    if x.shape[1] != len(names):
        raise XanesnetError(f"features have {x.shape[1]} columns but the model expects {len(names)}")
    if len(x) < 2:
        raise XanesnetError(f"permutation importance needs at least 2 molecules, got {len(x)}")
    if n_repeats < 1:
        raise XanesnetError(f"n_repeats must be at least 1, got {n_repeats}")
    radial = radial_channels(predictor)
    chosen = select_groups(feature_groups(predictor), groups, radial=radial)

    def predict(features: np.ndarray) -> np.ndarray:
        return predictor.predict_features(features).mean

    reference = "spectra"
    if y is None:
        y, reference = predict(x), "model mean"
    y = np.atleast_2d(np.asarray(y, float))
    if y.shape != (len(x), len(energy)):
        raise XanesnetError(f"reference spectra are {y.shape} but {(len(x), len(energy))} (molecules, model grid points) "
                            "are needed")
    windows = check_windows(windows, energy) if windows is not None else default_windows(energy, y)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        logger.info("no seed given; drew %d", seed)

    # one index column per single feature, then per group that is not a single feature
    units = [(i,) for i in range(len(names))]
    unit_of = {u: k for k, u in enumerate(units)}
    for cols in chosen.values():
        if tuple(cols) not in unit_of:
            unit_of[tuple(cols)] = len(units)
            units.append(tuple(cols))
    total = 1 + len(units) * n_repeats
    with tqdm(total=total, desc="importance", unit="pred", disable=not progress, leave=False) as bar:
        model = RowPermutationModel(predict, x, units, progress=bar)
        res = permutation_importance(model, model.index_matrix(), y, scoring=window_scorer(energy, windows),
                                     n_repeats=n_repeats, random_state=seed)
    group_rows = [unit_of[tuple(cols)] for cols in chosen.values()]
    return Importance(
        windows=windows, energy=energy, feature_names=names, group_columns={k: list(v) for k, v in chosen.items()},
        baseline_mse={w.name: float(np.mean((predict(x) - y)[:, w.mask(energy)] ** 2)) for w in windows},
        features={w.name: np.asarray(res[w.name].importances[: len(names)]) for w in windows},
        groups={w.name: np.asarray(res[w.name].importances[group_rows]) for w in windows},
        ids=list(ids) if ids is not None else [str(i) for i in range(len(x))], n_repeats=n_repeats, seed=int(seed),
        reference=reference, model=None if predictor.bundle.path is None else str(predictor.bundle.path), radial=radial)


# --- from files ------------------------------------------------------------------------------------------------------
def neighbour_distances(structures: Sequence, *, absorber: int | str | None = None,
                        r_max: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Absorber-neighbour distances ``0 < r_ij < r_max`` (Angstrom) over all structures, and the neighbours' atomic numbers."""
    from xanesnet.io.structures import resolve_absorber

    r_all, z_all = [], []
    for s in structures:
        a = resolve_absorber(s, absorber)
        r = np.linalg.norm(s.positions - s.positions[a], axis=1)
        keep = (r > 0) & (r < r_max)
        keep[a] = False
        r_all.append(r[keep])
        z_all.append(s.numbers[keep])
    if not r_all:
        return np.empty(0), np.empty(0, int)
    return np.concatenate(r_all), np.concatenate(z_all).astype(int)


def importance_from_files(model: str | os.PathLike, xyz: str | os.PathLike | Sequence[str | os.PathLike],
                          spectra: str | os.PathLike | None = None, *,
                          windows: Sequence[Window | str] | None = None, groups: Sequence[str] | None = None,
                          n_repeats: int = 5, seed: int | None = None, max_samples: int | None = None,
                          heldout: bool = False, absorber: int | str | None = None, spectrum_format: str | None = None,
                          cache: str | os.PathLike | None = None, progress: bool = False) -> Importance:
    """``xanesnet importance``: permutation importance of a saved model on structures (and spectra) paired by name.

    Parameters
    ----------
    model
        Model directory.
    xyz, spectra
        Structures (a directory, or a list of files and directories) and a
        directory of reference spectra paired with them by file name; without
        ``spectra`` the model's own prediction is the reference.
    max_samples
        Use this many molecules, drawn with ``seed`` before featurising (all when ``None``).
    heldout
        Only the model's held-out molecules.
    cache
        Feature cache file (``None``: no cache).

    Other arguments as :func:`permutation_importance_by_window`. The result
    carries the absorber-neighbour distances of the molecules used, for
    :func:`xanesnet.analysis.plots.plot_importance`.
    """
    from xanesnet.data.dataset import SPECTRUM_SUFFIXES, featurize_files, list_files, pair_by_stem
    from xanesnet.io.structures import find_structure_files
    from xanesnet.predict import Predictor

    predictor = Predictor.from_bundle(model)
    cfg = predictor.bundle.config
    # check the cheap arguments before featurising anything
    if windows is not None:
        windows = check_windows(windows, predictor.energy)
    select_groups(feature_groups(predictor), groups, radial=radial_channels(predictor))
    if n_repeats < 1:
        raise XanesnetError(f"n_repeats must be at least 1, got {n_repeats}")
    if absorber is None:
        absorber = cfg.get("absorber")
    sources = [xyz] if isinstance(xyz, (str, os.PathLike)) else list(xyz)
    structures = find_structure_files(sources)
    if not structures:
        raise XanesnetError("no structure files found in " + ", ".join(map(os.fspath, sources)))
    if spectra is not None:
        pairing = pair_by_stem(structures, list_files(spectra, SPECTRUM_SUFFIXES))
        if pairing.structures_only or pairing.spectra_only:
            logger.info("unmatched files:\n%s", pairing.report())
        structures, spectrum_files = pairing.structures, pairing.spectra
    else:
        spectrum_files = [None] * len(structures)
    if heldout:
        if "holdout" not in cfg:
            raise XanesnetError("the model was trained without a held-out split (train with --holdout)", path=model)
        keep = np.isin([p.stem for p in structures], cfg["holdout"]["ids"])
        if not keep.any():
            raise XanesnetError("none of the model's held-out molecules are among these structures")
        structures = [p for p, k in zip(structures, keep) if k]
        spectrum_files = [p for p, k in zip(spectrum_files, keep) if k]
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        logger.info("no seed given; drew %d", seed)
    if max_samples is not None:
        if max_samples < 2:
            raise XanesnetError(f"--max-samples must be at least 2, got {max_samples}")
        if max_samples < len(structures):
            pick = np.sort(np.random.default_rng(seed).choice(len(structures), max_samples, replace=False))
            structures = [structures[i] for i in pick]
            spectrum_files = [spectrum_files[i] for i in pick]

    feats = featurize_files(structures, predictor.descriptor, absorber=absorber, cache=cache, progress=progress,
                            keep_structures=True)
    y = None
    if spectra is not None:
        y = _load_reference(spectrum_files, cfg, predictor.energy, spectra, spectrum_format, progress)
    r_max = float(cfg["descriptor"].get("r_max", 6.0))
    distances, neighbours = neighbour_distances(feats.structures, absorber=absorber, r_max=r_max)
    result = permutation_importance_by_window(predictor, feats.x, y, windows=windows, groups=groups, n_repeats=n_repeats,
                                              seed=seed, ids=feats.ids, progress=progress)
    result.model = os.fspath(model)
    result.distances, result.neighbours, result.n_molecules_distances = distances, neighbours, len(feats.ids)
    if cfg["descriptor"].get("element_groups"):
        from ase.data import atomic_numbers

        result.neighbour_classes = {g.replace(",", ""): tuple(atomic_numbers[e.strip()] for e in g.split(","))
                                    for g in cfg["descriptor"]["element_groups"]}
    return result


def _load_reference(files: Sequence[Path], cfg: dict, grid: np.ndarray, where: str | os.PathLike,
                    spectrum_format: str | None, progress: bool) -> np.ndarray:
    """Reference spectra on the model's grid (after the model's spectrum processing, if it has one)."""
    from xanesnet.data.dataset import load_spectra

    process = None
    if cfg.get("spectra"):
        from xanesnet.spectra import processor_from_dict

        process = processor_from_dict(cfg["spectra"])
    energy, y = load_spectra(files, fmt=spectrum_format, process=process, progress=progress)
    if len(energy) != len(grid) or not np.allclose(energy, grid, atol=1e-6):
        raise XanesnetError(f"the spectra's grid ({energy[0]:g}-{energy[-1]:g} eV, {len(energy)} points) is not "
                            f"the model's ({grid[0]:g}-{grid[-1]:g} eV, {len(grid)} points)", path=where)
    return y


def write_importance(result: Importance, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``importance_features.csv``, ``importance_groups.csv`` and ``importance.json`` (each via a temporary file)."""
    import csv
    import io
    import json

    from xanesnet.atomic import write_text

    out_dir = Path(out_dir)
    written = []
    for level, name in (("features", "importance_features.csv"), ("groups", "importance_groups.csv")):
        rows = result.table(level)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        written.append(write_text(out_dir / name, buf.getvalue()))
    written.append(write_text(out_dir / "importance.json", json.dumps(result.to_dict(), indent=1)))
    return written


