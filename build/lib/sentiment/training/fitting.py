"""Fitting a compiled model: determinism, callbacks, resume after interruption, timing."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import shutil
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment.artifacts import write_text
from sentiment.config import Config
from sentiment.models import load_model, save_model
from sentiment.rundir import RunDir, read_history, read_history_file, read_history_rows  # the run folder's history, read here too
from sentiment.training import resume
from sentiment.training.loop import LoopRules

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FitResult:
    """What a (possibly resumed) training run did, across all its sessions."""

    history: list[dict[str, float]]  # one row per finished epoch, from history.csv
    best_epoch: int  # 0-based epoch with the lowest validation loss


def seed_everything(seed: int, deterministic_ops: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; make TF ops deterministic (same run, same numbers on CPU) unless told not to.

    Keras refuses XLA while op determinism is on, so an XLA run passes ``deterministic_ops=False``.
    """
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    else:
        from tensorflow.python.framework import config as tf_config  # the switch Keras itself reads

        tf_config.disable_op_determinism()


def log_devices() -> None:
    """Log the devices TensorFlow sees."""
    devices = tf.config.list_physical_devices()
    log.info("devices: %s", ", ".join(f"{d.device_type}:{d.name.split(':')[-1]}" for d in devices))
    if not tf.config.list_physical_devices("GPU"):
        log.info("no GPU found: training on CPU")


class EpochTimer(keras.callbacks.Callback):
    """Adds ``train_seconds`` (fit only) and ``epoch_seconds`` (with validation) to each epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Stop the training clock when validation starts (only the first time in an epoch)."""
        if getattr(self, "_train_end", 0) is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record both durations in the epoch's logs (and so in history.csv)."""
        now = time.perf_counter()
        if logs is not None:
            logs["train_seconds"] = (self._train_end or now) - self._start
            logs["epoch_seconds"] = now - self._start


class EarlyStop(keras.callbacks.Callback):
    """Stops when the loop's rules say so and ends training on the best epoch's weights, earlier sessions of the run included."""

    def __init__(self, rules: LoopRules, previous_losses: list[float], best_checkpoint: Path):
        super().__init__()
        self.rules, self.previous_losses, self.best_checkpoint = rules, previous_losses, best_checkpoint

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Take up the validation losses and best weights of earlier sessions of this run."""
        self.losses = list(self.previous_losses)
        self.best_weights = None
        if self.losses and self.best_checkpoint.exists():
            self.best_weights = load_model(self.best_checkpoint).get_weights()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Keep the weights of a new best epoch; stop once the rules say so."""
        self.losses.append((logs or {}).get("val_loss", np.nan))
        if self.rules.best_epoch(self.losses) == len(self.losses) - 1:
            self.best_weights = self.model.get_weights()
        if self.rules.should_stop(self.losses):
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        """Restore the best epoch's weights (as EarlyStopping(restore_best_weights=True) does)."""
        best = self.rules.best_epoch(self.losses)
        if self.best_weights is not None and best is not None:
            log.info("restoring the weights of the best epoch, %d of %d", best + 1, len(self.losses))
            self.model.set_weights(self.best_weights)


def write_history_row(path: Path, row: dict[str, float]) -> None:
    """Add one epoch's row to a CSVLogger-style file (header first when new), rewriting the file atomically."""
    rows = read_history_rows(path)
    fieldnames = list(rows[0]) if rows else sorted(row, key=lambda k: (k != "epoch", k))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows + [row])
    write_text(path, buffer.getvalue())


def epochs_backed_up(run: RunDir) -> int:
    """Return how many finished epochs the run's newest resume state holds (0 if none)."""
    states = resume.saved_states(run.backup)
    return states[0][0] if states else 0


def trim_history(run: RunDir, epochs: int) -> None:
    """Keep the first ``epochs`` rows of history.csv: a kill between writing it and the backup leaves extras."""
    trim_history_file(run.history, epochs)


def trim_history_file(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of a CSVLogger file."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) - 1 > epochs:
        write_text(path, "".join(lines[: epochs + 1]))


def learning_rate_schedule(rules: LoopRules) -> keras.callbacks.Callback:
    """Return the per-epoch learning rate; epoch-indexed, so a resumed run continues the same schedule."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: rules.learning_rate_at(epoch))


class HistoryLog(keras.callbacks.Callback):
    """Appends each epoch's logs to a CSVLogger-style ``history.csv``, rewriting it atomically (never a half row)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Record the epoch's metrics."""
        write_history_row(self.path, {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model (atomically) whenever the loop's rules name this epoch the best, earlier sessions of the run included."""

    def __init__(self, path: Path, previous_losses: list[float]):
        super().__init__()
        self.path, self.losses = path, list(previous_losses)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Save if this epoch is the best yet."""
        self.losses.append((logs or {}).get("val_loss", np.nan))
        if LoopRules.best_epoch(self.losses) == len(self.losses) - 1:
            save_model(self.model, self.path)


class BackupState(keras.callbacks.Callback):
    """Saves the resume state (model and optimizer variables) after every epoch: see :mod:`sentiment.training.resume`."""

    def __init__(self, backup: Path):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Back up the state after ``epoch + 1`` finished epochs."""
        resume.save(self.model, self.backup, epoch + 1)


class ShuffleEpoch(keras.callbacks.Callback):
    """Tells the training pipeline which epoch begins, so its shuffle is seeded by the epoch (see data.batching)."""

    def __init__(self, epoch: tf.Variable):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Set the epoch before Keras makes the epoch's iterator."""
        self.epoch.assign(epoch)


def make_callbacks(run: RunDir, rules: LoopRules, verbose: int, shuffle_epoch: tf.Variable) -> list[keras.callbacks.Callback]:
    """Return the training callbacks in the order they run: shuffle, timing, NaN stop, LR schedule, early stopping, checkpoint, history, backup, TensorBoard."""
    previous = val_losses(read_history(run))
    callbacks = [
        ShuffleEpoch(shuffle_epoch),
        EpochTimer(),
        keras.callbacks.TerminateOnNaN(),
        learning_rate_schedule(rules),
        EarlyStop(rules, previous, run.checkpoint),
        BestCheckpoint(run.checkpoint, previous),
        *history_and_backup(run.history, run.backup),
        keras.callbacks.TensorBoard(run.tensorboard, histogram_freq=0, write_graph=False),
    ]
    return callbacks


def val_losses(history: list[dict[str, float]]) -> list[float]:
    """Return each finished epoch's validation loss (NaN where it has none)."""
    return [row.get("val_loss", np.nan) for row in history]


def history_and_backup(history: Path, backup: Path) -> list[keras.callbacks.Callback]:
    """Return the history log and state backup that make a fit resumable, in the order that makes it safe."""
    # History first, then the backup: a kill between the two leaves an extra history row,
    # which trim_history drops on resume (a missing row could not be recovered). The backup
    # outlives fit() and is cleared once the run's metrics are written.
    return [HistoryLog(history), BackupState(backup)]


def fit_bucketed(model: keras.Model, train_ds: tf.data.Dataset, **fit_args) -> None:
    """``model.fit`` on bucketed batches, which have no known length (how Keras finds an epoch's end), unwarned."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(train_ds, shuffle=False, **fit_args)


def clear_backup(run: RunDir) -> None:
    """Delete the resume state once a run is complete."""
    shutil.rmtree(run.backup, ignore_errors=True)
    shutil.rmtree(run.refit_backup, ignore_errors=True)


def fit(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    config: Config,
    run: RunDir,
    shuffle_epoch: tf.Variable,
    verbose: int = 2,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    rules: LoopRules | None = None,
) -> FitResult:
    """Train ``model`` until early stopping or the rules' epoch bound, resuming from the run's backup if there is one.

    ``shuffle_epoch`` is the variable that seeds ``train_ds``'s shuffle (data.batching.make_train_dataset);
    ``rules`` default to the classifier's (``LoopRules.from_config``); pretraining passes its own.
    """
    rules = rules or LoopRules.from_config(config)
    done = resume.restore(model, run.backup)
    trim_history(run, done)
    if done and rules.should_stop(val_losses(read_history(run))):
        log.info("%s had finished training (%d epochs); restoring its best checkpoint", run, done)
        model.set_weights(load_model(run.checkpoint).get_weights())
    else:
        if done:
            log.info("resuming %s after %d finished epoch(s)", run, done)
        callbacks = make_callbacks(run, rules, verbose, shuffle_epoch) + list(extra_callbacks or [])
        fit_bucketed(model, train_ds, validation_data=val_ds, initial_epoch=done, epochs=rules.epochs, callbacks=callbacks, verbose=verbose)
    history = read_history(run)
    return FitResult(history=history, best_epoch=LoopRules.best_epoch(val_losses(history)) or 0)


def refit(model: keras.Model, train_ds: tf.data.Dataset, config: Config, run: RunDir, epochs: int, shuffle_epoch: tf.Variable,
          verbose: int = 2) -> list[dict[str, float]]:
    """Train a fresh ``model`` on train + validation for ``epochs`` epochs (no validation, same schedule), resumably.

    Early stopping already chose ``epochs`` on the held-out reviews; this spends them on
    10% more data. Returns the refit's history (one row per epoch).
    """
    done = resume.restore(model, run.refit_backup)
    trim_history_file(run.refit_history, done)
    if done:
        log.info("resuming the refit of %s after %d of %d epoch(s)", run, done, epochs)
    rules = LoopRules.from_config(config, epochs=epochs)
    callbacks = [ShuffleEpoch(shuffle_epoch), EpochTimer(), keras.callbacks.TerminateOnNaN(), learning_rate_schedule(rules),
                 *history_and_backup(run.refit_history, run.refit_backup)]
    if done < epochs:
        fit_bucketed(model, train_ds, initial_epoch=done, epochs=epochs, callbacks=callbacks, verbose=verbose)
    return read_history_file(run.refit_history)
