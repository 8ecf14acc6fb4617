"""Training an ensemble: seeds, the validation split, scalers, members fitted through the model contract.

:func:`train` takes descriptor vectors and spectra already on one grid and
returns a :class:`TrainedModel` that :mod:`xanesnet.bundle` saves.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from xanesnet.config import Config, TrainingSettings
from xanesnet.errors import XanesnetError
from xanesnet.models import build_model
from xanesnet.transforms import Standardizer, input_scaler, target_transform

logger = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """Everything learned: member networks, scalers, and how they were made."""

    members: list[nn.Module]
    x_scaler: Standardizer
    y_transform: Any
    config: Config
    seed: int
    val_index: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def draw_seed() -> int:
    """A fresh seed when the user gave none; it is logged and saved with the model."""
    return int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices, a seeded random split."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    if n - n_val < 2:
        raise XanesnetError(f"too few samples to train: {n} (need at least {n_val + 2})")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train(x: np.ndarray, y: np.ndarray, config: Config, *, init: Sequence[dict[str, Any]] | None = None,
          progress: bool = True) -> TrainedModel:
    """Fit ``config.training.ensemble`` networks mapping ``x`` (n, features) to ``y`` (n, points).

    The scalers are fitted on the training part only; the validation part
    (``val_fraction``) drives early stopping and is kept for calibration.
    ``init`` (state dicts, e.g. :attr:`xanesnet.warmstart.WarmStart.members`)
    starts member ``m`` from ``init[m % len(init)]`` instead of random weights.
    """
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise XanesnetError(f"x and y must be 2-D with the same number of rows, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise XanesnetError("training data contain NaN or infinite values")
    settings = config.training = config.training.for_size(len(x))  # the data-size rules; saved with the model as used
    seed = config.seed if config.seed is not None else draw_seed()
    if config.seed is None:
        logger.info("no seed given; drew seed %d (saved with the model)", seed)
    config.seed = seed
    start = time.perf_counter()
    train_idx, val_idx = split_validation(len(x), settings.val_fraction, seed)
    x_scaler = input_scaler(config.descriptor is None or config.descriptor.standardize).fit(x[train_idx])
    y_tf = target_transform(settings.target_transform).fit(y[train_idx])
    xs = torch.as_tensor(x_scaler.transform(x), dtype=torch.float32)
    ys = torch.as_tensor(y_tf.transform(y), dtype=torch.float32)

    members, history = [], []
    from tqdm.auto import tqdm

    threads = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        for m in tqdm(range(settings.ensemble), desc="members", unit="model", disable=not progress or settings.ensemble == 1):
            members.append(_fit_member(m, seed, config, xs, ys, train_idx, val_idx, init, history, progress=progress))
    finally:
        torch.set_num_threads(threads)
    return TrainedModel(members=members, x_scaler=x_scaler, y_transform=y_tf, config=config, seed=seed,
                        val_index=val_idx, history=history, seconds=time.perf_counter() - start)


def fine_tune(source: TrainedModel, x: np.ndarray, y: np.ndarray, val_index: np.ndarray, training: TrainingSettings,
              *, progress: bool = True) -> TrainedModel:
    """Continue training ``source``'s members on ``(x, y)`` in the source's own input and output space.

    Unlike :func:`train` with ``init`` (``train --init-from``), the source's
    input scaler and target transform are kept, since they are what its
    weights expect: this suits a subset of the data the source was fitted
    on, such as one metal of the universal Ti-Zn network. ``val_index``
    (rows of ``x``) early-stops each member and is kept for calibration; for
    such a subset pass the source's own validation rows, so that nothing
    early-stops on data the source was fitted to. ``training`` gives the
    learning rate, batch size, patience and epochs of the fine-tuning; the
    ensemble size stays the source's.
    """
    if len(x) != len(y) or x.shape[1] != len(source.x_scaler.mean_):
        raise XanesnetError(f"fine-tuning data do not fit the source network: x {x.shape}, y {y.shape}")
    val_index = np.asarray(val_index, int)
    train_idx = np.setdiff1d(np.arange(len(x)), val_index)
    if len(val_index) < 1 or len(train_idx) < 2:
        raise XanesnetError(f"too few samples to fine-tune: {len(train_idx)} to fit, {len(val_index)} to validate")
    config = copy.deepcopy(source.config)
    config.training = dataclasses.replace(training.for_size(len(x)), ensemble=len(source.members))
    xs = torch.as_tensor(source.x_scaler.transform(x), dtype=torch.float32)
    ys = torch.as_tensor(source.y_transform.transform(y), dtype=torch.float32)
    start = time.perf_counter()
    init = [m.state_dict() for m in source.members]
    history: list[dict[str, Any]] = []
    members = [_fit_member(m, source.seed, config, xs, ys, train_idx, val_index, init, history, progress=progress)
               for m in range(len(source.members))]
    return TrainedModel(members=members, x_scaler=source.x_scaler, y_transform=source.y_transform, config=config,
                        seed=source.seed, val_index=val_index, history=history, seconds=time.perf_counter() - start)


def _fit_member(m: int, seed: int, config: Config, xs: torch.Tensor, ys: torch.Tensor, train_idx: np.ndarray,
                val_idx: np.ndarray, init: Sequence[dict[str, Any]] | None, history: list[dict[str, Any]], *,
                progress: bool) -> nn.Module:
    """Ensemble member ``m`` (seeded with ``seed + m``), its log appended to ``history``."""
    settings = config.training
    member_seed = seed + m
    idx = train_idx
    if settings.bootstrap:
        idx = np.sort(np.random.default_rng(member_seed).choice(train_idx, size=len(train_idx), replace=True))
    seed_everything(member_seed)
    net = build_model(config.model, n_in=xs.shape[1], n_out=ys.shape[1])
    if init:
        net.load_state_dict(init[m % len(init)])
    log = net.fit(xs[idx], ys[idx], xs[val_idx], ys[val_idx], settings, seed=member_seed, progress=progress)
    history.append({"member": m, "seed": member_seed, **log})
    logger.info("member %d: best val loss %.5f at epoch %d", m, log["best_val_loss"], log["best_epoch"])
    return net
