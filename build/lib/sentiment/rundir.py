"""A training run's directory: every path in it, whether it is finished, and who may write to it.

    config.json        the Config (so nothing else needs flags later)
    run.json           library versions, devices, start time, command line
    vocabulary.txt     the vectorizer's vocabulary, adapted on training reviews only
    ngram_vocabulary.txt   the wide branch's word 1-2-grams (models with one)
    history.csv        one row per finished epoch; tensorboard/ the same for TensorBoard
    checkpoints/best.keras   the best classifier on token ids (lowest validation loss)
    backup/            resume state while training runs (removed once the run is finished)
    refit/             with --refit: history.csv and backup/ of the retraining on train + validation
    model.keras        the final end-to-end model on raw strings
    metrics.json       test metrics (written last: its presence marks the run finished)
    report.md, *.png   the evaluation report
    .lock              held by the one process training in it
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Iterator

from sentiment.config import Config
from sentiment.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The paths of one run directory and the checks made on it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    config = property(lambda self: self.path / "config.json")
    run_info = property(lambda self: self.path / "run.json")
    vocabulary = property(lambda self: self.path / "vocabulary.txt")
    ngram_vocabulary = property(lambda self: self.path / "ngram_vocabulary.txt")
    history = property(lambda self: self.path / "history.csv")
    refit_history = property(lambda self: self.path / "refit" / "history.csv")
    refit_backup = property(lambda self: self.path / "refit" / "backup")
    tensorboard = property(lambda self: self.path / "tensorboard")
    checkpoint = property(lambda self: self.path / "checkpoints" / "best.keras")
    backup = property(lambda self: self.path / "backup")
    model = property(lambda self: self.path / "model.keras")
    metrics = property(lambda self: self.path / "metrics.json")
    lock_file = property(lambda self: self.path / ".lock")

    def __str__(self) -> str:
        return str(self.path)

    def is_finished(self) -> bool:
        """Return True if the run completed (metrics are written last, after the model)."""
        return all(p.is_file() for p in (self.config, self.model, self.metrics))

    def require_finished(self) -> None:
        """Raise a ModelError unless this is a finished run."""
        if not self.is_finished():
            raise ModelError(f"{self.path} is not a finished run (no metrics.json beside model.keras and config.json)")

    def load_config(self) -> Config:
        """Return the run's saved Config, or raise a ModelError if it is missing or unreadable."""
        try:
            return Config.load(self.config)
        except (OSError, ConfigError) as e:
            raise ModelError(f"{self.config} is unreadable: {e}") from e

    def check_can_train(self, config: Config) -> None:
        """Refuse a path that is a file, a folder of someone else's files, a finished run, or a run with other settings."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--run-dir {self.path} is a file, not a directory")
        if not self.path.is_dir():
            return
        if self.is_finished():
            raise ConfigError(f"{self.path} holds a finished run; choose another --run-dir")
        if not self.config.exists():
            others = [p.name for p in self.path.iterdir() if p.name != self.lock_file.name]
            if others:  # never write into (or clean up) a folder of the user's own files
                raise ConfigError(f"--run-dir {self.path} is not a run directory and not empty ({others[0]}, ...); choose a new or empty one")
            return
        previous = self.load_config().to_dict()
        changed = [k for k, v in config.to_dict().items() if previous.get(k) != v]
        if changed:
            raise ConfigError(f"{self.path} was started with different settings ({', '.join(changed)}); use a new --run-dir")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock for the block; raise a ConfigError if another live process holds it.

        An flock dies with its process, so a lock left by a killed run is never an obstacle.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip() or "another process"
                raise ConfigError(f"{self.path} is in use by {owner}; wait for it to finish or choose another --run-dir") from None
            stale = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
            if stale:
                log.info("taking over %s from %s, which has ended", self.lock_file, stale)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the flock


def check_output_dir(path: Path, writes: frozenset[str], marker: str) -> None:
    """Refuse an output folder holding anything but what this command writes (``writes``), or files without its ``marker``.

    As for run dirs: a folder of the user's own files (their own report.md, a plot) is never overwritten
    or cleaned up. ``marker`` is the file the command writes last, so a folder with it is one it wrote.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a directory")
    if not path.is_dir():
        return
    present = sorted(p.name for p in path.iterdir())
    foreign = [name for name in present if name not in writes]
    if foreign or (present and marker not in present):
        raise ConfigError(f"--out {path} holds files this command did not write ({(foreign or present)[0]}, ...); choose a new or empty folder")


def read_history(run: RunDir) -> list[dict[str, float]]:
    """Return the finished epochs recorded in the run's ``history.csv`` (empty if none)."""
    return read_history_file(run.history)


def read_history_file(path: Path) -> list[dict[str, float]]:
    """Return the rows of a history file as floats (empty if there is no file)."""
    try:
        # A fit without validation leaves its val_ columns empty (CSVLogger wrote NA).
        return [{k: float(v) for k, v in row.items() if k and v not in ("", "NA", None)} for row in read_history_rows(path)]
    except ValueError as e:
        raise ModelError(f"{path} is unreadable ({e})") from e


def read_history_rows(path: Path) -> list[dict[str, str]]:
    """Return a history file's rows as strings, as written (empty if there is no file); ModelError if unreadable."""
    if not path.exists():
        return []
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ModelError(f"{path} is unreadable ({e})") from e
