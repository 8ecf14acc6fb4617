"""From a spectrum back to the absorber's first coordination shell (``xanesnet invert``, ``xanesnet train --inverse``).

An ensemble of MLPs reads a spectrum and gives the coordination number (a
probability per class), the mean first-shell distance r1 (Angstrom, with a
standard deviation) and the donor atoms per element group (see
:mod:`xanesnet.analysis.shell` for the first-shell rule).

The input does not depend on the spectrum's absolute energy or intensity
scale, which a measurement never shares with a calculation: the edge E0 is
found (:func:`xanesnet.spectra.edge_energy`), the spectrum is taken on the
window ``E0 + window`` (eV) and divided by its mean there. Training adds a
random shift of the window (up to ``jitter`` eV, for the error in E0) and
Gaussian noise (up to ``noise`` times the spectrum's maximum) to every
sample in every epoch.

Each member also learns, as an auxiliary target that teaches it where the
first-shell cutoff lies, the distances of the absorber's nearest
:data:`N_RATIOS` atoms in units of the sum of covalent radii (clipped at
:data:`RATIO_CLIP`); the CN is the number of them up to
:data:`~xanesnet.analysis.shell.FIRST_SHELL_FACTOR`. It is not reported.

Uncertainty: each member gives CN logits, a mean and a variance of r1, and
donor counts. The CN probabilities are the members' mean softmax at a
temperature, and the r1 standard deviation (member spread and predicted
variance) is scaled by a factor; both are fitted on the training run's
validation split (with the same shifts and noise) and saved with the model.
A spectrum whose input lies more than
:data:`~xanesnet.uncertainty.EXTRAPOLATION_LIMIT` training standard
deviations beyond the training range at some energy is flagged as not trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xanesnet.analysis.shell import DONOR_GROUPS, FIRST_SHELL_FACTOR, cutoff_ratios, first_shell
from xanesnet.errors import XanesnetError
from xanesnet.io.spectra import Spectrum

logger = logging.getLogger(__name__)

KIND = "inverse"
GROUPS = tuple(DONOR_GROUPS)
#: The default network of ``xanesnet train --inverse`` (an ensemble of these; ~0.5 MB per member in float32).
#: Dropout 0.2 rather than the package's 0.1: the CN accuracy is better in cross-validation on the training part.
INVERSE_MODEL_SETTINGS: dict[str, Any] = {"kind": "mlp", "hidden": [256, 256], "activation": "silu", "dropout": 0.2}
_R1_WEIGHT, _DONOR_WEIGHT, _RATIO_WEIGHT = 1.0, 0.2, 0.5  # loss weights of the other heads against the CN cross-entropy
#: Auxiliary target: distances of this many nearest atoms over the sum of covalent radii, clipped at RATIO_CLIP.
N_RATIOS, RATIO_CLIP = 12, 1.6


@dataclass
class InverseInput:
    """How a spectrum becomes the network's input (saved with the model).

    Parameters
    ----------
    window
        ``(low, high)`` energies relative to the edge E0 (eV) the spectrum must cover.
    step
        Spacing of the input points (eV).
    jitter
        Training only: the window is shifted by a uniform random amount in
        ``[-jitter, jitter]`` eV per sample and epoch.
    noise
        Training only: Gaussian noise with a standard deviation drawn
        uniformly from ``[0, noise]`` times the sample's maximum.
    edge_smooth
        Gaussian smoothing (eV) of the edge search that places the window
        (:class:`~xanesnet.spectra.EdgeSettings`). Heavier than the package's
        default on purpose: the window only needs a reproducible anchor on
        the main edge, and a narrow, intense pre-edge peak must not win.
    """

    window: tuple[float, float] = (-18.0, 28.0)
    step: float = 0.25
    jitter: float = 1.0
    noise: float = 0.02
    edge_smooth: float = 5.0

    def __post_init__(self) -> None:
        self.window = (float(self.window[0]), float(self.window[1]))
        if (not self.window[0] < 0 < self.window[1] or self.step <= 0 or self.jitter < 0 or self.noise < 0
                or self.edge_smooth < 0):
            raise XanesnetError(f"inverse input: need window low < 0 < high, step > 0, jitter, noise and edge_smooth >= 0; "
                                f"got {self}")

    @classmethod
    def from_config(cls, saved: dict[str, Any]) -> "InverseInput":
        """The settings saved in a model's config (a model saved before ``edge_smooth`` existed used 3 eV)."""
        return cls(**{"edge_smooth": 3.0, **saved, "window": tuple(saved["window"])})

    @property
    def energies(self) -> np.ndarray:
        """The input energies relative to E0 (eV)."""
        n = int(round((self.window[1] - self.window[0]) / self.step)) + 1
        return self.window[0] + self.step * np.arange(n)

    def padded(self) -> np.ndarray:
        """The input energies extended by ``jitter`` on both sides: what training stores per sample."""
        pad = int(np.ceil(self.jitter / self.step))
        return self.window[0] + self.step * np.arange(-pad, len(self.energies) + pad)

    def read(self, spectrum: Spectrum, *, relative: np.ndarray | None = None, strict: bool = True) -> tuple[np.ndarray, float]:
        """The spectrum on ``E0 + relative`` (default :attr:`energies`) divided by its mean on the window, and E0.

        ``strict``: a spectrum that does not cover the window raises
        :class:`XanesnetError` naming the file (otherwise the end values are repeated).
        """
        from xanesnet.spectra import EdgeSettings, edge_energy

        e0 = edge_energy(spectrum, EdgeSettings(smooth=self.edge_smooth))
        rel = self.energies if relative is None else relative
        lo, hi = e0 + self.window[0], e0 + self.window[1]
        e = spectrum.energy
        tol = 0.5 * self.step
        if strict and (e[0] > lo + tol or e[-1] < hi - tol):
            raise XanesnetError(f"the spectrum ({e[0]:g}-{e[-1]:g} eV) does not cover the model's range: E0 {e0:.1f} eV "
                                f"{self.window[0]:+g} to {self.window[1]:+g} eV = {lo:.1f}-{hi:.1f} eV",
                                path=spectrum.source or spectrum.name)
        values = np.interp(e0 + rel, e, spectrum.intensity)
        inside = (rel >= self.window[0]) & (rel <= self.window[1])
        level = float(np.mean(values[inside]))
        if not level > 0:
            raise XanesnetError("the spectrum's mean intensity over the model's window is not positive",
                                path=spectrum.source or spectrum.name)
        return values / level, e0


@dataclass
class ShellTargets:
    """What the inverse model learns per molecule: CN, r1 (Angstrom; nan without neighbours), donor counts, and the
    nearest atoms' distances over the sum of covalent radii (auxiliary)."""

    cn: np.ndarray
    r1: np.ndarray
    donors: np.ndarray  # (n, len(GROUPS))
    ratios: np.ndarray  # (n, N_RATIOS), ascending, inf past the last atom

    def take(self, index: np.ndarray) -> "ShellTargets":
        """The targets of the molecules at ``index``."""
        return ShellTargets(cn=self.cn[index], r1=self.r1[index], donors=self.donors[index], ratios=self.ratios[index])


def shell_targets(structures: Sequence, *, absorber: int | str | None = None) -> ShellTargets:
    """First-shell targets of parsed structures."""
    from xanesnet.io.structures import resolve_absorber

    where = [resolve_absorber(s, absorber) for s in structures]
    shells = [first_shell(s, a) for s, a in zip(structures, where)]
    return ShellTargets(cn=np.array([s.cn for s in shells]), r1=np.array([s.r1 for s in shells]),
                        donors=np.array([[s.donors[g] for g in GROUPS] for s in shells], dtype=float),
                        ratios=np.array([cutoff_ratios(s, a, N_RATIOS) for s, a in zip(structures, where)]).reshape(-1, N_RATIOS))


@dataclass
class InverseData:
    """Training pairs: padded inputs (n, len(padded())), targets, names."""

    ids: list[str]
    x: np.ndarray
    targets: ShellTargets
    e0: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)  # the absorber's element per molecule


def build_inverse_set(xyz_dir: str | os.PathLike, spectra_dir: str | os.PathLike, inputs: InverseInput, *,
                      absorber: int | str | None = None, spectrum_format: str | None = None, skip_bad: bool = False,
                      progress: bool = False) -> InverseData:
    """Pair structures and spectra by name; first-shell targets from the structures, inputs from the spectra.

    Spectra need not share a grid: each is read on its own E0-relative window.
    """
    from tqdm.auto import tqdm

    from xanesnet.data.dataset import SPECTRUM_SUFFIXES, list_files, pair_by_stem
    from xanesnet.io.spectra import read_spectrum
    from xanesnet.io.structures import find_structure_files, read_structure

    pairing = pair_by_stem(find_structure_files([xyz_dir]), list_files(spectra_dir, SPECTRUM_SUFFIXES))
    if pairing.structures_only or pairing.spectra_only:
        logger.warning("unmatched files:\n%s", pairing.report())
    ids, rows, structures, e0s, skipped = [], [], [], [], []
    padded = inputs.padded()
    for stem, xyz, spec in tqdm(list(zip(pairing.stems, pairing.structures, pairing.spectra)), desc="pairs", unit="mol",
                                disable=not progress, leave=False):
        try:
            s = read_structure(xyz)
            x, e0 = inputs.read(read_spectrum(spec, fmt=spectrum_format), relative=padded, strict=False)
        except XanesnetError as exc:
            if not skip_bad:
                raise
            skipped.append((stem, str(exc)))
            continue
        ids.append(stem)
        rows.append(x)
        structures.append(s)
        e0s.append(e0)
    if not ids:
        raise XanesnetError("no usable structure + spectrum pairs", path=xyz_dir)
    from ase.data import chemical_symbols

    from xanesnet.io.structures import resolve_absorber

    return InverseData(ids=ids, x=np.vstack(rows), targets=shell_targets(structures, absorber=absorber), e0=np.array(e0s),
                       skipped=skipped, elements=[chemical_symbols[s.numbers[resolve_absorber(s, absorber)]] for s in structures])


class _Augment:
    """Random window shift (by whole padded points, then linear interpolation) and noise, then standardisation."""

    def __init__(self, inputs: InverseInput, mean: np.ndarray, std: np.ndarray):
        import torch

        self.pad = int(np.ceil(inputs.jitter / inputs.step))
        self.n = len(inputs.energies)
        self.shift_points = inputs.jitter / inputs.step
        self.noise = inputs.noise
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)

    def __call__(self, xb, gen):
        import torch

        k = len(xb)
        pos = self.pad + torch.arange(self.n, dtype=torch.float32) + (2 * torch.rand(k, 1, generator=gen) - 1) * self.shift_points
        lo = pos.floor().long().clamp(0, xb.shape[1] - 2)
        frac = pos - lo
        x = torch.gather(xb, 1, lo) * (1 - frac) + torch.gather(xb, 1, lo + 1) * frac
        sigma = torch.rand(k, 1, generator=gen) * self.noise * x.amax(1, keepdim=True)
        x = x + sigma * torch.randn(x.shape, generator=gen)
        return (x - self.mean) / self.std


def _split_outputs(z, n_classes: int):
    """Network output -> (CN logits, r1 mean, r1 log-variance, donor counts, auxiliary ratios); works on numpy arrays
    and tensors."""
    k = n_classes + 2 + len(GROUPS)
    return z[..., :n_classes], z[..., n_classes], z[..., n_classes + 1], z[..., n_classes + 2: k], z[..., k:]


def _scaled_ratios(ratios: np.ndarray) -> np.ndarray:
    """The auxiliary target: ratios clipped at :data:`RATIO_CLIP`, 0 at the first-shell cutoff, 1 per 0.2."""
    return (np.minimum(ratios, RATIO_CLIP) - FIRST_SHELL_FACTOR) / 0.2


class _Loss:
    """Cross-entropy of CN + Gaussian negative log-likelihood of standardised r1 + MSE of donor counts + MSE of the
    scaled neighbour ratios."""

    def __init__(self, n_classes: int):
        self.n_classes = n_classes

    def __call__(self, z, y):
        import torch
        from torch.nn import functional as F

        logits, mu, logvar, donors, ratios = _split_outputs(z, self.n_classes)
        k = 3 + len(GROUPS)
        cn, r1, has_r1, counts = y[:, 0].long(), y[:, 1], y[:, 2], y[:, 3:k]
        logvar = logvar.clamp(-12.0, 6.0)
        nll = 0.5 * (logvar + (mu - r1) ** 2 * torch.exp(-logvar))
        r1_loss = (nll * has_r1).sum() / has_r1.sum().clamp(min=1.0)
        return (F.cross_entropy(logits, cn) + _R1_WEIGHT * r1_loss + _DONOR_WEIGHT * F.mse_loss(donors, counts)
                + _RATIO_WEIGHT * F.mse_loss(ratios, y[:, k:]))


def train_inverse(data: InverseData, inputs: InverseInput, out: str | os.PathLike, *, config=None,
                  holdout: float = 0.0, absorber: int | str | None = None, metadata: dict[str, Any] | None = None,
                  weights_dtype: str = "float32", progress: bool = True) -> dict[str, Any]:
    """Fit and save an inverse model; ``holdout`` > 0 leaves out the fixed held-out share (by name hash).

    ``config`` is a :class:`~xanesnet.config.Config` (its ``model``, ``training`` and ``seed`` are used; default:
    an ensemble of 5 MLPs, :data:`INVERSE_MODEL_SETTINGS`). ``weights_dtype="float16"`` stores the weights in
    half precision if that moves no network output on the validation split by
    :data:`~xanesnet.pipeline.FLOAT16_TOLERANCE` of its RMS or more (else float32, with a warning); the
    calibration is then fitted with the rounded weights.
    """
    import time

    import torch

    from xanesnet.bundle import save_bundle
    from xanesnet.config import Config
    from xanesnet.data.dataset import data_hash, heldout_mask
    from xanesnet.models import build_model
    from xanesnet.training import draw_seed, seed_everything, split_validation
    from xanesnet.transforms import Standardizer

    if config is None:
        config = Config(model=dict(INVERSE_MODEL_SETTINGS))
    seed = config.seed if config.seed is not None else draw_seed()
    config.seed = seed
    settings = config.training = config.training.for_size(int((~(heldout_mask(data.ids, holdout) if holdout > 0 else
                                                                   np.zeros(len(data.ids), bool))).sum()))
    test = heldout_mask(data.ids, holdout) if holdout > 0 else np.zeros(len(data.ids), bool)
    keep = np.flatnonzero(~test)
    x_all, t = data.x[keep], data.targets
    classes = np.arange(int(t.cn[keep].max()) + 1)
    has_r1 = np.isfinite(t.r1[keep])
    r1_mean, r1_std = float(np.mean(t.r1[keep][has_r1])), float(np.std(t.r1[keep][has_r1]))
    y = np.column_stack([t.cn[keep], np.where(has_r1, (t.r1[keep] - r1_mean) / r1_std, 0.0), has_r1, t.donors[keep],
                         _scaled_ratios(t.ratios[keep])])
    start = time.perf_counter()
    train_idx, val_idx = split_validation(len(keep), settings.val_fraction, seed)
    pad = (x_all.shape[1] - len(inputs.energies)) // 2
    centre = x_all[:, pad: pad + len(inputs.energies)]
    scaler = Standardizer().fit(centre[train_idx])
    augment = _Augment(inputs, scaler.mean_, scaler.std_)
    # validation inputs carry the same kind of shifts and noise, drawn once with the seed
    x_val = augment(torch.as_tensor(x_all[val_idx], dtype=torch.float32), torch.Generator().manual_seed(seed))
    xs = torch.as_tensor(x_all, dtype=torch.float32)
    ys = torch.as_tensor(y, dtype=torch.float32)
    n_out = len(classes) + 2 + len(GROUPS) + N_RATIOS
    loss = _Loss(len(classes))
    members, history = [], []
    from tqdm.auto import tqdm

    for m in tqdm(range(settings.ensemble), desc="members", unit="model", disable=not progress or settings.ensemble == 1):
        seed_everything(seed + m)
        net = build_model(config.model, n_in=len(inputs.energies), n_out=n_out)
        log = net.fit(xs[train_idx], ys[train_idx], x_val, ys[val_idx], settings, seed=seed + m, progress=progress,
                      loss_fn=loss, augment=augment)
        members.append(net)
        history.append({"member": m, "seed": seed + m, **log})
        logger.info("member %d: best val loss %.5f at epoch %d", m, log["best_val_loss"], log["best_epoch"])
    fit_ids = [data.ids[k] for k in keep]
    saved: dict[str, Any] = {
        "kind": KIND,
        "input": dataclasses.asdict(inputs),
        "model": members[0].get_params(),
        "training": dataclasses.asdict(settings),
        "seed": seed,
        "absorber": absorber,
        "cn_classes": classes.tolist(),
        "groups": list(GROUPS),
        "neighbour_ratios": {"n": N_RATIOS, "clip": RATIO_CLIP, "weight": _RATIO_WEIGHT},
        "first_shell": {"rule": "r <= factor * (R_cov(M) + R_cov(j)), ASE covalent radii", "factor": FIRST_SHELL_FACTOR},
        "r1_scale": {"mean": r1_mean, "std": r1_std},
        "x_scaler": scaler.state(),
        "n_train": len(fit_ids),
        "training_data_sha256": data_hash(fit_ids, x_all, y),
        "training_seconds": round(time.perf_counter() - start, 2),
        "history": history,
        **({"element": data.elements[0]} if len(set(data.elements)) == 1 else {}),
        **(metadata or {}),
    }
    if test.any():
        saved["holdout"] = {"fraction": holdout, "rule": "sha256(name) mod 1000 < 1000*fraction",
                            "ids": [i for i, h in zip(data.ids, test) if h]}
    if weights_dtype == "float16":
        weights_dtype = _narrow_if_harmless(members, x_val, saved)
    saved["weights_dtype"] = weights_dtype
    predictor = InversePredictor(saved, members)
    saved["calibration"] = predictor.fit_calibration(x_val.numpy() * scaler.std_ + scaler.mean_, t.cn[keep][val_idx],
                                                     t.r1[keep][val_idx])
    save_bundle(out, saved, members, weights_dtype=weights_dtype)
    return saved


def _narrow_if_harmless(members: list, x: Any, saved: dict[str, Any]) -> str:
    """Round ``members`` to float16 in place if no output for the standardised inputs ``x`` moves by
    :data:`~xanesnet.pipeline.FLOAT16_TOLERANCE` of its RMS or more; the dtype to store."""
    import torch

    from xanesnet.pipeline import FLOAT16_TOLERANCE, half_rounded

    half = [half_rounded(net) for net in members]
    with torch.inference_mode():
        a = np.stack([net(x).numpy() for net in members]).astype(np.float64)
        b = np.stack([net(x).numpy() for net in half]).astype(np.float64)
    rms = np.sqrt(np.mean(a**2, axis=-1))
    change = float(np.max(np.abs(b - a).max(axis=-1) / np.where(rms > 0, rms, 1.0)))
    saved["float16_check"] = {"max_change_over_rms": change, "tolerance": FLOAT16_TOLERANCE, "n_spectra": int(x.shape[0])}
    if change >= FLOAT16_TOLERANCE:
        logger.warning("float16 weights would move a validation output by %.2g of its RMS (limit %g): kept float32",
                       change, FLOAT16_TOLERANCE)
        return "float32"
    members[:] = half
    return "float16"


@dataclass
class Shells:
    """Predicted first shells: CN (most probable class) and its probability, every class's probability,
    r1 and its calibrated std (Angstrom), expected donor counts per group, E0 (eV), trust."""

    ids: list[str]
    cn: np.ndarray
    cn_prob: np.ndarray
    probabilities: np.ndarray
    classes: np.ndarray
    r1: np.ndarray
    r1_std: np.ndarray
    donors: np.ndarray
    e0: np.ndarray
    extrapolation: np.ndarray
    trusted: np.ndarray


class InversePredictor:
    """A loaded inverse model; build with :meth:`from_bundle`."""

    def __init__(self, config: dict[str, Any], members: list, path: Path | None = None):
        from xanesnet.transforms import Standardizer

        self.config, self.members, self.path = config, members, path
        self.inputs = InverseInput.from_config(config["input"])
        self.classes = np.asarray(config["cn_classes"], int)
        self.scaler = Standardizer.from_state(config["x_scaler"])

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> "InversePredictor":
        from xanesnet.bundle import build_members, read_model_dir

        path = Path(path)
        config, state = read_model_dir(path, ("kind", "input", "model", "cn_classes", "x_scaler", "r1_scale", "calibration"))
        if config["kind"] != KIND:
            raise XanesnetError(f"not an inverse model (kind {config['kind']!r}); train one with 'xanesnet train --inverse'",
                                path=path)
        inputs = InverseInput.from_config(config["input"])
        members = build_members(path, config, state, n_in=len(inputs.energies),
                                n_out=len(config["cn_classes"]) + 2 + len(config["groups"])
                                + config.get("neighbour_ratios", {}).get("n", 0))
        return cls(config, members, path)

    def _raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per member: CN logits, r1 mean and variance (Angstrom), donor counts."""
        import torch

        z = torch.as_tensor(self.scaler.transform(x), dtype=torch.float32)
        with torch.inference_mode():
            out = np.stack([net(z).numpy().astype(np.float64) for net in self.members])
        logits, mu, logvar, donors, _ = _split_outputs(out, len(self.classes))
        scale = self.config["r1_scale"]
        return (logits, mu * scale["std"] + scale["mean"], np.exp(np.clip(logvar, -12.0, 6.0)) * scale["std"] ** 2,
                donors)

    @staticmethod
    def _probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
        z = logits / temperature
        z = np.exp(z - z.max(-1, keepdims=True))
        return (z / z.sum(-1, keepdims=True)).mean(0)

    def fit_calibration(self, x_val: np.ndarray, cn: np.ndarray, r1: np.ndarray) -> dict[str, Any]:
        """CN temperature (lowest validation log-loss) and r1 std factor (+-1, +-2 sigma coverage) on validation data."""
        from xanesnet.uncertainty import fit_calibration

        logits, mu, var, _ = self._raw(x_val)
        index = np.searchsorted(self.classes, cn)
        temps = np.geomspace(0.3, 5.0, 60)
        nll = [-np.mean(np.log(self._probabilities(logits, t)[np.arange(len(cn)), index] + 1e-12)) for t in temps]
        ok = np.isfinite(r1)
        std = np.sqrt(mu.var(0) + var.mean(0))
        cal = fit_calibration(r1[ok, None], mu.mean(0)[ok, None], std[ok, None])
        return {"cn_temperature": float(temps[int(np.argmin(nll))]), "r1": cal, "n_validation": int(len(cn))}

    def predict_inputs(self, x: np.ndarray, *, ids: Sequence[str], e0: np.ndarray) -> Shells:
        """First shells from prepared inputs (n, len(inputs.energies))."""
        from xanesnet.uncertainty import EXTRAPOLATION_LIMIT, out_of_range

        distance, _, x = out_of_range(np.atleast_2d(x), self.scaler)
        logits, mu, var, donors = self._raw(x)
        cal = self.config["calibration"]
        prob = self._probabilities(logits, cal["cn_temperature"])
        best = prob.argmax(1)
        std = np.sqrt(mu.var(0) + var.mean(0)) * float(cal["r1"]["scale"][0])
        return Shells(ids=list(ids), cn=self.classes[best], cn_prob=prob[np.arange(len(best)), best], probabilities=prob,
                      classes=self.classes, r1=mu.mean(0), r1_std=std, donors=np.clip(donors.mean(0), 0.0, None),
                      e0=np.asarray(e0, float), extrapolation=distance, trusted=distance <= EXTRAPOLATION_LIMIT)

    def predict(self, spectra: Sequence[Spectrum]) -> Shells:
        """First shells of spectra (any grid, any absolute energy offset and intensity scale)."""
        read = [self.inputs.read(s) for s in spectra]
        x = np.array([r[0] for r in read]).reshape(len(read), -1)
        return self.predict_inputs(x, ids=[s.name for s in spectra], e0=np.array([r[1] for r in read]))


def format_shells(shells: Shells) -> str:
    """The ``xanesnet invert`` table: one row per spectrum, tab-separated, with a header line."""
    head = ["name", "cn", "cn_prob", "r1", "r1_std", *GROUPS, "e0", "trusted", "cn_probabilities"]
    rows = ["\t".join(head)]
    for k, name in enumerate(shells.ids):
        probs = ",".join(f"{c}:{p:.3f}" for c, p in zip(shells.classes, shells.probabilities[k]) if p >= 0.005)
        rows.append("\t".join([name, str(int(shells.cn[k])), f"{shells.cn_prob[k]:.3f}", f"{shells.r1[k]:.4f}",
                               f"{shells.r1_std[k]:.4f}", *(f"{v:.0f}" for v in shells.donors[k]), f"{shells.e0[k]:.2f}",
                               str(bool(shells.trusted[k])).lower(), probs]))
    return "\n".join(rows) + "\n"
