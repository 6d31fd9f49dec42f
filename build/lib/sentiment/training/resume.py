"""A run's resume state: every variable of the model and its optimizer after each finished epoch.

``<backup>/state-<epochs>.npz`` holds, after ``<epochs>`` finished epochs, the model's
variables (weights, and the RNG states of its dropout layers) and the optimizer's (step
count, moments), so a resumed run continues exactly where the interrupted one was.
Each state is written to a temporary name and renamed, so a kill or a full disk leaves
the previous state intact; the newest two are kept, and a damaged newest one (a disk
that lied) is skipped for the one before.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from pathlib import Path

import keras
import numpy as np

from sentiment import artifacts

log = logging.getLogger(__name__)

KEEP = 2  # states kept: the newest, and one to fall back on
_NAME = re.compile(r"state-(\d+)\.npz")


def state_path(backup: Path, epochs: int) -> Path:
    """Return where the state after ``epochs`` finished epochs is saved."""
    return Path(backup) / f"state-{epochs:05d}.npz"


def saved_states(backup: Path) -> list[tuple[int, Path]]:
    """Return (finished epochs, path) of the states in ``backup``, newest first."""
    if not Path(backup).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(backup).iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)


def state_variables(model: keras.Model) -> list[keras.Variable]:
    """Return the variables a resumed run needs, in a fixed order: the model's, then its optimizer's (built first)."""
    optimizer = model.optimizer
    if optimizer is None:
        return list(model.variables)
    if not optimizer.built:  # its slots must exist before they can be restored
        optimizer.build(model.trainable_variables)
    return list(model.variables) + list(optimizer.variables)


def save(model: keras.Model, backup: Path, epochs: int) -> None:
    """Save the state after ``epochs`` finished epochs atomically and drop all but the newest ``KEEP``."""
    variables = state_variables(model)
    buffer = io.BytesIO()
    arrays = {f"v{i}": np.asarray(keras.ops.convert_to_numpy(v.value)) for i, v in enumerate(variables)}
    np.savez(buffer, paths=np.array([v.path for v in variables]), **arrays)
    artifacts.write_bytes(state_path(backup, epochs), buffer.getvalue())
    for _, old in saved_states(backup)[KEEP:]:
        old.unlink(missing_ok=True)


def restore(model: keras.Model, backup: Path) -> int:
    """Load the newest usable state into ``model`` and its optimizer; return its finished epochs (0: start afresh)."""
    variables = state_variables(model)
    states = saved_states(backup)
    for epochs, path in states:
        try:
            values = read_state(path, variables)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log.warning("resume state %s is unusable (%s); trying the one before it", path, e)
            continue
        for variable, value in zip(variables, values):
            variable.assign(value)
        return epochs
    if states:
        log.warning("no usable resume state in %s: this run starts again from its first epoch", backup)
    return 0


def read_state(path: Path, variables: list[keras.Variable]) -> list[np.ndarray]:
    """Read a state's arrays for ``variables``; ValueError unless their number and shapes match.

    Names are not compared: Keras numbers auto-named layers per process ("seed_generator_3").
    """
    with np.load(path, allow_pickle=False) as data:
        count = len(data["paths"])
        if count != len(variables):
            raise ValueError(f"it holds {count} variables, the model {len(variables)}")
        values = [data[f"v{i}"] for i in range(count)]
    for variable, value in zip(variables, values):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{variable.path} has shape {value.shape}, the model {tuple(variable.shape)}")
    return values
