"""The model contract: what every model kind provides, and the one gradient-descent loop.

A model kind is a torch module subclassing :class:`Model` with a settings
dataclass (a :class:`ModelSettings` subclass whose fields are its JSON form,
every default in one place). It is built from those settings and the input
and output sizes, fitted with :meth:`Model.fit`, predicts with or without a
variance with :meth:`Model.predict`, and saves and loads as settings + state
dict (:meth:`Model.get_params`, :meth:`Model.state`, :meth:`Model.from_state`).
Inputs are the rows of the model's descriptor (its ``input_kind``): a feature
vector for the MLP and the GP, an absorber environment for a graph network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from xanesnet.settings import Settings


@dataclass(frozen=True)
class ModelSettings(Settings):
    """Base of a model kind's settings: ``kind`` names the kind; ``input_kind`` is what its inputs are."""

    section: ClassVar[str] = "model"
    input_kind: ClassVar[str] = "vector"

    kind: str = ""

    def __post_init__(self) -> None:
        from xanesnet.errors import XanesnetError

        expected = type(self).__dataclass_fields__["kind"].default
        if self.kind != expected:
            raise XanesnetError(f"model settings of kind {expected!r} got kind {self.kind!r}")


class Model(nn.Module):
    """Base class of the model kinds; subclasses set ``Settings`` and build their layers in ``__init__``.

    Parameters
    ----------
    settings
        The kind's settings.
    n_in, n_out
        Input row length and number of outputs (energy points or target components).
    """

    Settings: ClassVar[type[ModelSettings]] = ModelSettings
    #: True when :meth:`predict` gives the model's own variance (else the ensemble spread is the uncertainty).
    has_variance: ClassVar[bool] = False
    #: True when :meth:`fit` solves for the parameters in closed form (no starting weights to fine-tune from).
    closed_form: ClassVar[bool] = False

    def __init__(self, settings: ModelSettings, *, n_in: int, n_out: int):
        super().__init__()
        self.settings, self.n_in, self.n_out = settings, n_in, n_out

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def has_dropout(self) -> bool:
        return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in self.modules())

    def get_params(self) -> dict[str, Any]:
        """The settings as saved (JSON)."""
        return self.settings.to_dict()

    def state(self) -> dict[str, torch.Tensor]:
        """Learned parameters and buffers (a state dict)."""
        return self.state_dict()

    @classmethod
    def from_state(cls, settings: ModelSettings, state: dict[str, torch.Tensor], *, n_in: int, n_out: int) -> "Model":
        """A model rebuilt from its settings and :meth:`state`, in evaluation mode."""
        with torch.device("meta"):  # no initialisation work: the weights are assigned from the state
            net = cls(settings, n_in=n_in, n_out=n_out)
        net.load_state(state)
        return net.eval()

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, assign=True)

    def predict(self, x: torch.Tensor, *, variance: bool = False):
        """Outputs for inputs ``x`` (evaluation mode, no gradients); with ``variance``, ``(mean, var)``.

        Models without their own variance return a zero variance.
        """
        with torch.inference_mode():
            mean = self(x)
        return (mean, torch.zeros_like(mean)) if variance else mean

    def fit(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, training, *, seed: int,
            progress: bool = False, loss_fn: Callable | None = None, augment: Callable | None = None) -> dict[str, Any]:
        """AdamW on ``loss_fn(prediction, target)`` (default: the MSE), early stopping on the validation loss
        with the best weights restored.

        ``training`` is a :class:`~xanesnet.config.TrainingSettings`.
        ``augment(x_batch, generator)``, if given, turns each training batch
        into the network's input (e.g. random energy shifts and noise); the
        validation inputs are used as given. Returns a log (best validation
        loss, its epoch, epochs run).
        """
        from tqdm.auto import tqdm

        opt = torch.optim.AdamW(self.parameters(), lr=training.lr, weight_decay=training.weight_decay)
        # halve the step when the validation loss stalls; stop after `patience` epochs without progress
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, training.patience // 4))
        gen = torch.Generator().manual_seed(seed)
        loss_fn = loss_fn or nn.MSELoss()
        best, best_epoch, best_state = float("inf"), -1, None
        bar = tqdm(range(training.epochs), desc="epochs", unit="ep", disable=not progress, leave=False)
        for epoch in bar:
            self.train()
            for batch in torch.randperm(len(x), generator=gen).split(training.batch_size):
                opt.zero_grad()
                xb = x[batch] if augment is None else augment(x[batch], gen)
                loss = loss_fn(self(xb), y[batch])
                loss.backward()
                opt.step()
            self.eval()
            with torch.no_grad():
                val = loss_fn(self(x_val), y_val).item()
            sched.step(val)
            if val < best:
                best, best_epoch, best_state = val, epoch, copy.deepcopy(self.state_dict())
            bar.set_postfix(val=f"{val:.4f}", best=f"{best:.4f}")
            if epoch - best_epoch >= training.patience:
                break
        self.load_state_dict(best_state)
        self.eval()
        return {"best_val_loss": best, "best_epoch": best_epoch, "epochs_run": epoch + 1}
