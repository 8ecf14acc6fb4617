"""Figures: permutation importance against distance, predicted spectra with error bands, evaluation summaries.

matplotlib is imported inside the functions (it is an optional dependency,
``pip install xanesnet[plot]``) and used through :class:`matplotlib.figure.Figure`
with the Agg canvas, never ``pyplot``, so nothing depends on or changes a
global backend. Each ``*_figure`` function returns a figure; each ``plot_*``
function also saves it, every file written under a temporary name and renamed
into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from xanesnet.errors import XanesnetError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from xanesnet.analysis.importance import Importance
    from xanesnet.predict import Prediction

#: Neighbour classes (atomic numbers) of the distance histogram when the model has no element channels to follow;
#: the same as the ``default`` preset's channels.
NEIGHBOUR_CLASSES: dict[str, tuple[int, ...]] = {
    "H": (1,), "C": (6,), "N": (7,), "O": (8,), "PSAsSe": (15, 16, 33, 34), "FClBrI": (9, 17, 35, 53),
}
_COLOURS = {"H": "#bbbbbb", "C": "#404040", "N": "#3b6fd0", "O": "#d0413b", "PSAsSe": "#d9a400", "FClBrI": "#3aa35a",
            "other": "#9b59b6"}
_LABELS = {"PSAsSe": "P/S/As/Se", "FClBrI": "F/Cl/Br/I"}


def _colour(name: str, k: int) -> str:
    return _COLOURS.get(name) or f"C{k % 10}"


def _figure(**kwargs) -> "Figure":
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover
        raise XanesnetError("plots need matplotlib: pip install 'xanesnet[plot]'") from None
    return Figure(**kwargs)


def save_figure(fig: "Figure", path: str | os.PathLike, *, formats: Sequence[str] = ("png", "svg"),
                dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (a ``.png``/``.svg`` suffix on ``path`` is replaced).

    Each file is written under a temporary name and renamed into place.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path = Path(path)
    if path.suffix.lower() in (".png", ".svg", ".pdf"):
        path = path.with_suffix("")
    from xanesnet.io.files import write_all

    targets = [path.with_name(f"{path.name}.{fmt}") for fmt in formats]
    return write_all(targets, lambda i, tmp: fig.savefig(tmp, format=formats[i], dpi=dpi))


# --- importance ----------------------------------------------------------------------------------------------------
def importance_figure(result: "Importance") -> "Figure":
    """Per window: the absorber-neighbour distance histogram above G2 importance at each centre (Angstrom),
    and element-channel importance below when the model has them; on the right, the grouped importance (every
    family, and the 24 strongest other groups).
    """
    from xanesnet.analysis.importance import centre_groups, element_centres, g2_centres

    windows = result.windows
    cols, mu = g2_centres(result)
    channels = element_centres(result)
    has_hist = result.distances is not None and len(result.distances) > 0
    rows = ["hist"] * has_hist + ["g2"] * (len(cols) > 0) + ["element"] * (len(channels) > 0)
    if not rows:  # no distance-resolved features (e.g. a model trained on prebuilt features): groups only
        fig = _figure(figsize=(5.0, 2.0 + 0.25 * len(result.group_columns) * len(windows)), layout="constrained")
        _group_bars(fig, result, [g for g in result.group_columns])
        return fig
    fig = _figure(figsize=(3.9 * len(windows) + 4.6, 2.0 + 2.1 * len(rows)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[3.9 * len(windows), 4.6])
    heights = {"hist": 1.0, "g2": 1.5, "element": 1.5}
    axes = np.atleast_2d(left.subplots(len(rows), len(windows), sharex=True, squeeze=False,
                                       gridspec_kw={"height_ratios": [heights[r] for r in rows]}))
    r_all = np.concatenate([mu, *(m for _, m in channels.values())]) if (len(mu) or channels) else np.array([0, 6.0])
    r_hi = float(np.max(result.distances)) if has_hist else float(r_all.max()) + 0.5
    for j, w in enumerate(windows):
        for i, kind in enumerate(rows):
            ax = axes[i, j]
            if kind == "hist":
                _distance_histogram(ax, result.distances, result.neighbours, result.n_molecules_distances or 1, r_hi,
                                    result.neighbour_classes or NEIGHBOUR_CLASSES)
                ax.set_title(f"{w.name} ({w.e_min:g}-{w.e_max:g} eV)", fontsize=10)
                if j == 0:
                    ax.set_ylabel("neighbours per\nmolecule per Å", fontsize=8)
                    ax.legend(fontsize=6, ncol=2, frameon=False, loc="upper left")
            elif kind == "g2":
                width = 0.8 * (np.min(np.diff(np.sort(mu))) if len(mu) > 1 else 0.2)
                ax.bar(mu, result.mean(w.name)[cols], width=width, yerr=result.std(w.name)[cols], color="#3b6fd0",
                       error_kw={"elinewidth": 0.6, "capsize": 0}, label="G2 (Z-weighted)")
                if j == 0:
                    ax.set_ylabel("increase in MSE\n(one G2 scrambled)", fontsize=8)
                if not has_hist:
                    ax.set_title(f"{w.name} ({w.e_min:g}-{w.e_max:g} eV)", fontsize=10)
            else:
                for k, (name, (c, m)) in enumerate(channels.items()):
                    ax.errorbar(m, result.mean(w.name)[c], yerr=result.std(w.name)[c], marker="o", ms=2.5, lw=1,
                                elinewidth=0.5, color=_colour(name, k), label=_LABELS.get(name, name))
                if j == 0:
                    ax.set_ylabel("increase in MSE\n(element channel)", fontsize=8)
                    ax.legend(fontsize=6, ncol=2, frameon=False)
            ax.axhline(0, color="k", lw=0.5)
            ax.tick_params(labelsize=7)
            ax.yaxis.get_offset_text().set_fontsize(7)
        axes[-1, j].set_xlabel("absorber-neighbour distance r (Å)", fontsize=8)
    axes[0, 0].set_xlim(0, r_hi)
    left.suptitle(f"Permutation importance by distance ({result.reference} as reference, "
                  f"{len(result.ids)} molecules, {result.n_repeats} repeats)", fontsize=9)

    # grouped importance, without the single G2 centres drawn on the left
    centres = set(centre_groups(result.group_columns, result.radial).get("G2", []))
    _group_bars(right, result, _strongest_groups(result, [g for g in result.group_columns if g not in centres]))
    return fig


def _strongest_groups(result: "Importance", names: list[str], k: int = 24) -> list[str]:
    """The family groups (``all ...``) and the ``k`` other groups with the largest importance in any window, in order."""
    families = [g for g in names if g.startswith("all ")]
    rest = [g for g in names if not g.startswith("all ")]
    if len(rest) > k:
        idx = [list(result.group_columns).index(g) for g in rest]
        peak = np.max([result.mean(w.name, "groups")[idx] for w in result.windows], axis=0)
        keep = set(np.argsort(-peak)[:k].tolist())
        rest = [g for i, g in enumerate(rest) if i in keep]
    return families + rest


def _group_bars(fig, result: "Importance", names: list[str]) -> None:
    """Horizontal bars of grouped importance (mean +- std over repeats), one colour per window."""
    windows = result.windows
    idx = [list(result.group_columns).index(g) for g in names]
    ax = fig.subplots()
    if names:
        y = np.arange(len(names))
        h = 0.8 / len(windows)
        for k, w in enumerate(windows):
            ax.barh(y - 0.4 + h * (k + 0.5), result.mean(w.name, "groups")[idx], height=h,
                    xerr=result.std(w.name, "groups")[idx], label=w.name, error_kw={"elinewidth": 0.6})
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.5)
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("increase in MSE (group scrambled together)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Feature groups", fontsize=9)


def _distance_histogram(ax, r: np.ndarray, z: np.ndarray | None, n_mol: int, r_hi: float,
                        classes: dict[str, tuple[int, ...]]) -> None:
    """Stacked histogram of absorber-neighbour distances, per molecule and Angstrom, by neighbour class."""
    bins = np.arange(0.0, r_hi + 0.05, 0.05)
    z = np.zeros(len(r), int) if z is None else z
    parts, labels, colours = [], [], []
    known = np.zeros(len(r), bool)
    for k, (name, numbers) in enumerate(classes.items()):
        sel = np.isin(z, numbers) & ~known
        known |= sel
        if sel.any():
            parts.append(r[sel]), labels.append(_LABELS.get(name, name)), colours.append(_colour(name, k))
    if (~known).any():
        parts.append(r[~known]), labels.append("other"), colours.append(_COLOURS["other"])
    weights = [np.full(len(p), 1.0 / (n_mol * 0.05)) for p in parts]
    ax.hist(parts, bins=bins, weights=weights, stacked=True, color=colours, label=labels, histtype="stepfilled", lw=0)


def plot_importance(result: "Importance", path: str | os.PathLike, *,
                    formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save :func:`importance_figure` as ``path.png`` and ``path.svg``."""
    return save_figure(importance_figure(result), path, formats=formats)


# --- predicted spectra -----------------------------------------------------------------------------------------------
#: y-axis label per spectrum kind.
INTENSITY_LABELS = {"xanes": "normalised absorption", "xes": "emission intensity (arb. units)"}
#: what the band is, per uncertainty mode of :class:`~xanesnet.predict.Prediction`.
BAND_LABELS = {"ensemble": "ensemble spread", "mc": "MC dropout", "predictive": "Gaussian-process predictive"}


def spectrum_figure(energy: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None, *,
                    reference: tuple[np.ndarray, np.ndarray] | None = None, title: str = "", kind: str = "xanes",
                    mode: str | None = "ensemble", trust: str | None = None, reference_label: str = "reference") -> "Figure":
    """A predicted spectrum (eV) with its band ``mean +- 2 std`` and, if given, the reference ``(energy, intensity)``.

    The legend names the uncertainty ``mode`` behind the band (ensemble, MC
    dropout); ``trust`` (the verdict and score) is written on the figure; the
    y axis is labelled by ``kind``.
    """
    fig = _figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    if std is not None and mode is not None:
        ax.fill_between(energy, mean - 2 * std, mean + 2 * std, color="#3b6fd0", alpha=0.25, lw=0,
                        label=f"prediction ± 2σ ({BAND_LABELS.get(mode, mode)})")
    ax.plot(energy, mean, color="#3b6fd0", lw=1.5, label="prediction")
    if reference is not None:
        ax.plot(reference[0], reference[1], color="k", lw=1.0, ls="--", label=reference_label)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel(INTENSITY_LABELS[kind])
    ax.set_xlim(float(energy[0]), float(energy[-1]))
    ax.set_title(title, fontsize=10)
    if trust:
        flagged = trust.startswith("NOT")
        ax.text(0.99, 0.03, trust, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                color="#d0413b" if flagged else "#3aa35a", fontweight="bold" if flagged else "normal")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_predictions(prediction: "Prediction", out_dir: str | os.PathLike, *, reference_dir: str | os.PathLike | None = None,
                     spectrum_format: str | None = None, e0: float | None = None) -> tuple[list[Path], list[str]]:
    """``NAME.KIND.png`` per predicted molecule in ``out_dir``; references from ``reference_dir`` paired by file name
    (``NAME.*`` or ``NAME.KIND.*``).

    The prediction is drawn as written (``e0``: see
    :func:`xanesnet.predict.energy_shifts`). A XANES reference is normalised
    as Larch does (:func:`xanesnet.spectra.preedge.pre_edge`), an XES
    reference scaled to the prediction's maximum. Returns the files written
    and the names that had no reference spectrum.
    """
    from xanesnet.data.dataset import SPECTRUM_SUFFIXES, list_files
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.predict import prediction_records, trust_verdict
    from xanesnet.spectra.preedge import pre_edge

    refs = {p.stem: p for p in list_files(reference_dir, SPECTRUM_SUFFIXES)} if reference_dir is not None else {}
    written, missing = [], []
    for i, rec in enumerate(prediction_records(prediction, e0=e0)):
        name, energy = rec["name"], np.asarray(rec["energy"])
        reference, label = None, "reference"
        ref = refs.get(name) or refs.get(f"{name}.{prediction.kind}")  # NAME.xdi, or NAME.xanes.xdi as predict writes
        if ref is not None:
            spec = read_spectrum(ref, fmt=spectrum_format)
            if prediction.kind == "xanes":
                edge = pre_edge(spec.energy, spec.intensity)
                reference, label = (spec.energy, edge.norm), f"reference, normalised (E0 {edge.e0:.2f} eV)"
            else:
                reference = (spec.energy, spec.intensity * prediction.mean[i].max() / spec.intensity.max())
                label = "reference, scaled to the prediction's maximum"
        elif reference_dir is not None:
            missing.append(name)
        score = "" if rec["uncertainty_score"] is None else (f": uncertainty score {rec['uncertainty_score']:.3g}"
                                                              f" (threshold {rec['trust_threshold']:.3g})")
        where = (f"E0 {rec['e0_ev']:.2f} eV" if prediction.kind == "xanes" else
                 f"main line {rec['main_line_ev']:.2f} eV" if rec["main_line_ev"] is not None else "no peak inside the grid")
        title = f"{name}: {rec['element'] or ''} {prediction.kind.upper()}, {where}" + (f" ({rec['model']})" if rec["model"] else "")
        fig = spectrum_figure(energy, prediction.mean[i], prediction.std[i], reference=reference, title=title,
                              kind=prediction.kind, mode=prediction.mode, trust=trust_verdict(rec) + score,
                              reference_label=label)
        written += save_figure(fig, Path(out_dir) / f"{name}.{prediction.kind}", formats=("png",))
    return written, missing


# --- evaluation ------------------------------------------------------------------------------------------------------
def evaluation_figure(energy: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, ids: Sequence[str], *,
                      std: np.ndarray | None = None, label: str = "", kind: str = "xanes", mode: str | None = "ensemble"
                      ) -> "Figure":
    """Best, median and worst spectrum by per-spectrum MSE (prediction vs reference), and the histogram of those MSEs."""
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    mse = np.mean((y_pred - y_true) ** 2, axis=1)
    order = np.argsort(mse, kind="stable")
    picks = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
    fig = _figure(figsize=(10.0, 6.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (what, k) in zip(axes, picks.items()):
        if std is not None and mode is not None:
            ax.fill_between(energy, y_pred[k] - 2 * std[k], y_pred[k] + 2 * std[k], color="#3b6fd0", alpha=0.25, lw=0,
                            label=f"± 2σ ({BAND_LABELS.get(mode, mode)})")
        ax.plot(energy, y_true[k], color="k", lw=1.0, ls="--", label="reference")
        ax.plot(energy, y_pred[k], color="#3b6fd0", lw=1.4, label="prediction")
        ax.set_title(f"{what}: {ids[k]} (MSE {mse[k]:.2g})", fontsize=9)
        ax.set_xlabel("energy (eV)", fontsize=8)
        ax.set_ylabel(INTENSITY_LABELS[kind], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    ax = axes[3]
    positive = mse[mse > 0]
    if len(positive) and positive.max() > positive.min():
        bins = np.geomspace(positive.min(), positive.max(), 40)
        ax.set_xscale("log")
    else:
        bins = 20
    ax.hist(positive if len(positive) else mse, bins=bins, color="#888888")
    for what, k in picks.items():
        ax.axvline(mse[k], color={"best": "#3aa35a", "median": "#3b6fd0", "worst": "#d0413b"}[what], lw=1, label=what)
    ax.set_xlabel("per-spectrum MSE", fontsize=8)
    ax.set_ylabel("spectra", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{len(mse)} spectra: median MSE {np.median(mse):.2g}, mean {mse.mean():.2g}", fontsize=9)
    fig.suptitle(f"Evaluation{': ' + label if label else ''}", fontsize=10)
    return fig


def plot_evaluation(energy: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, ids: Sequence[str],
                    path: str | os.PathLike, *, std: np.ndarray | None = None, label: str = "", kind: str = "xanes",
                    mode: str | None = "ensemble", formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save :func:`evaluation_figure` as ``path.png`` and ``path.svg``."""
    return save_figure(evaluation_figure(energy, y_true, y_pred, ids, std=std, label=label, kind=kind, mode=mode), path,
                       formats=formats)


# --- matching --------------------------------------------------------------------------------------------------------
def match_figure(measured, energy: np.ndarray, mean: np.ndarray, std: np.ndarray, ranking, *, top: int = 3) -> "Figure":
    """The measured spectrum and the ``top`` best candidates, each shifted and scaled as fitted, with its ± 2σ band."""
    fig = _figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(measured.energy, measured.intensity, color="k", lw=1.6, label=f"measured: {measured.name}")
    for j, k in enumerate(ranking.order[:top]):
        e, s = energy + ranking.shift_ev[k], ranking.scale[k]
        colour = f"C{j}"
        ax.fill_between(e, s * (mean[k] - 2 * std[k]), s * (mean[k] + 2 * std[k]), color=colour, alpha=0.2, lw=0)
        ax.plot(e, s * mean[k], color=colour, lw=1.2,
                label=f"{j + 1}. {ranking.names[k]} (weight {ranking.weight[k]:.2f}, {ranking.shift_ev[k]:+.2f} eV)")
    ax.set_xlabel("Energy (eV)")
    ax.set_ylabel("Intensity")
    lo = max(float(measured.energy[0]), float(energy[0]) - 5)
    hi = min(float(measured.energy[-1]), float(energy[-1]) + 5)
    ax.set_xlim(lo, hi)
    ax.set_title("best candidates, shifted and scaled (bands ± 2σ)", fontsize=10)
    ax.legend(frameon=False, fontsize=7)
    return fig


def plot_match(measured, energy: np.ndarray, prediction: "Prediction", ranking, path: str | os.PathLike) -> list[Path]:
    """Save :func:`match_figure` as ``path`` (png)."""
    return save_figure(match_figure(measured, energy, prediction.mean, prediction.std, ranking), path, formats=("png",))
