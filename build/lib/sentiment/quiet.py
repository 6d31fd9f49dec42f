"""Keeping native libraries' log lines (TensorFlow's, LiteRT's C++) out of the user's terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null for the block; Python exceptions are printed after it, once fd 2 is back."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up notices silenced (e.g. in a freshly spawned worker process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced():
        import tensorflow  # noqa: F401
