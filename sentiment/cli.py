"""Shared command-line plumbing for the entry points: flags from the Config, logging, error exits."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Callable, Iterator

from sentiment.config import Config, config_fields
from sentiment.errors import SentimentError

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per Config field; unset flags stay None so presets and defaults apply."""
    for field in config_fields():
        if field.name in skip:
            continue
        kind = _TYPES[str(field.type)]
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (default: {field.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text, metavar=field.name.upper())


def config_overrides(args: argparse.Namespace) -> dict:
    """Return the Config fields the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in config_fields() if getattr(args, f.name, None) is not None}


def setup_logging(verbose: bool = True) -> None:
    """Log INFO (or WARNING) lines to stderr and quiet TensorFlow's C++ start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def main_guard(main: Callable[[], int | None]) -> None:
    """Run ``main``; turn user errors into one ``error:`` line and exit code 2, Ctrl-C into 130."""
    try:
        sys.exit(main() or 0)
    except SentimentError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # unwritable output dir, full disk: the user's to fix, not a bug
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def progress_bar(total: int, enabled: bool) -> "tqdm":  # noqa: F821
    """Return a tqdm progress bar on stderr (a silent one when not ``enabled``)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="review", file=sys.stderr, disable=not enabled)


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and probe devices with C++ notices silenced (they ignore TF_CPP_MIN_LOG_LEVEL)."""
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()


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
