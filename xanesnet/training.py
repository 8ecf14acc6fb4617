"""The one training loop: seeds, Adam, early stopping with the best weights restored, progress.

:func:`train` takes descriptor vectors and spectra already on one grid and
returns a :class:`TrainedModel` that :mod:`xanesnet.bundle` saves.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from xanesnet.config import Config, TrainingSettings
from xanesnet.errors import XanesnetError
from xanesnet.models import build_model
from xanesnet.transforms import Standardizer, target_transform

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
    x_scaler = Standardizer().fit(x[train_idx])
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
    if hasattr(net, "fit_exact"):  # closed-form models (the Gaussian process)
        log = net.fit_exact(xs[idx], ys[idx], seed=member_seed)
        with torch.no_grad():
            log.update(best_val_loss=nn.functional.mse_loss(net(xs[val_idx]), ys[val_idx]).item(), best_epoch=0)
    else:
        log = _fit_one(net, xs[idx], ys[idx], xs[val_idx], ys[val_idx], settings, seed=member_seed, progress=progress)
    history.append({"member": m, "seed": member_seed, **log})
    logger.info("member %d: best val loss %.5f at epoch %d", m, log["best_val_loss"], log["best_epoch"])
    return net


def _fit_one(net: nn.Module, x_tr: torch.Tensor, y_tr: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
             settings: TrainingSettings, *, seed: int, progress: bool, loss_fn: Callable | None = None,
             augment: Callable | None = None) -> dict[str, Any]:
    """Adam on ``loss_fn(prediction, target)`` (default: the MSE in transformed space), early stopping on the validation loss.

    ``augment(x_batch, generator)``, if given, turns each training batch into the network's input (e.g. random
    energy shifts and noise); the validation inputs are used as given.
    """
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    # halve the step when the validation loss stalls; stop after `patience` epochs without progress
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, settings.patience // 4))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = loss_fn or nn.MSELoss()
    best, best_epoch, best_state = float("inf"), -1, None
    bar = tqdm(range(settings.epochs), desc="epochs", unit="ep", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        for batch in torch.randperm(len(x_tr), generator=gen).split(settings.batch_size):
            opt.zero_grad()
            xb = x_tr[batch] if augment is None else augment(x_tr[batch], gen)
            loss = loss_fn(net(xb), y_tr[batch])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = loss_fn(net(x_val), y_val).item()
        sched.step(val)
        if val < best:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(net.state_dict())
        bar.set_postfix(val=f"{val:.4f}", best=f"{best:.4f}")
        if epoch - best_epoch >= settings.patience:
            break
    net.load_state_dict(best_state)
    net.eval()
    return {"best_val_loss": best, "best_epoch": best_epoch, "epochs_run": epoch + 1}
