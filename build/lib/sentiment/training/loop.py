"""The training loop's rules, in one place: the learning rate of each epoch, when to stop, which epoch is best.

Every loop obeys them: ``training.fit`` (through Keras callbacks), the multi-worker loop of
``distribute`` and any loop added later. They are a pure function of the validation losses
of the finished epochs, so a resumed run, which reads those from its ``history.csv``,
decides exactly as an uninterrupted one. What a resumed run restores besides is the resume
state of :mod:`sentiment.training.resume`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from sentiment.config import Config


@dataclasses.dataclass(frozen=True)
class LoopRules:
    """Schedule, early stopping and best epoch of one training loop."""

    epochs: int  # upper bound on epochs
    patience: int  # epochs without improvement of validation loss before stopping (0: stop at the first)
    learning_rate: float  # of epoch 0
    lr_decay: float  # learning rate multiplier per epoch

    @classmethod
    def from_config(cls, config: Config, epochs: int | None = None) -> "LoopRules":
        """The rules ``config`` sets (``epochs`` overrides its epoch bound, as a refit does)."""
        return cls(epochs or config.epochs, config.patience, config.learning_rate, config.lr_decay)

    def learning_rate_at(self, epoch: int) -> float:
        """Return the learning rate of 0-based ``epoch``: the models overfit within a few epochs, so later ones take smaller steps."""
        return self.learning_rate * self.lr_decay**epoch

    @staticmethod
    def best_epoch(val_losses: Sequence[float]) -> int | None:
        """Return the 0-based epoch with the lowest validation loss (the first of equals; NaN never counts), or None."""
        best, best_loss = None, math.inf
        for epoch, loss in enumerate(val_losses):
            if loss < best_loss:  # strictly lower, as Keras' EarlyStopping counts an improvement
                best, best_loss = epoch, loss
        return best

    def epochs_without_improvement(self, val_losses: Sequence[float]) -> int:
        """Return how many epochs have passed since the best one (all of them if none was finite)."""
        best = self.best_epoch(val_losses)
        return len(val_losses) - 1 - best if best is not None else len(val_losses)

    def should_stop(self, val_losses: Sequence[float]) -> bool:
        """Return True after these finished epochs: all ``epochs`` ran, or ``patience`` (at least one) went without improvement."""
        if len(val_losses) >= self.epochs:
            return True
        wait = self.epochs_without_improvement(val_losses)
        return wait > 0 and wait >= self.patience
