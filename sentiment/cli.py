"""Shared command-line plumbing for the entry points: config flags, one-line errors, logging.

Importing this module first (as every script does) keeps TensorFlow's C++ start-up
chatter out of the user's terminal; it is the one place that sets TF's log level.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

# Must precede the first TensorFlow import. 3 hides TF's C++ ERROR lines too (E0000 ...
# node_def_util, "oneDNN supports DT_BOOL"): they are notices, and every real failure
# reaches Python as an exception, which run_main turns into one ``error:`` line.
# TF_ENABLE_ONEDNN_OPTS is left alone: it changes numerics, not just messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sentiment.artifacts import DISK_ERRNOS, write_error  # noqa: E402
from sentiment.config import DEFAULT_MODEL, Config, config_fields, field_type, make_config, read_recipe  # noqa: E402
from sentiment.errors import SentimentError, printable  # noqa: E402
from sentiment.quiet import native_stderr_silenced  # noqa: E402

# Every entry point exports to and reads named models from here, wherever it is started from.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "saved_models"


# Your own runs are exported here (under the working directory), so an export never silently becomes the
# default of predict.py and serve.py, which read the shipped saved_models/: serve yours with --models-dir exports.
EXPORTS_DIR = "exports"


def add_models_dir_flag(parser: argparse.ArgumentParser, exporting: bool = False) -> None:
    """Add ``--models-dir``: where models are read from (the shipped saved_models/) or, ``exporting``, written to (exports/)."""
    default, where = (EXPORTS_DIR, "exports/ under the working directory") if exporting else (str(DEFAULT_MODELS_DIR), "this project's saved_models/")
    # --export-dir: its old name in train.py and export_model.py, still accepted.
    parser.add_argument("--models-dir", "--export-dir", dest="models_dir", default=default, metavar="DIR",
                        help=f"root of exported models, <DIR>/<name>/<version>/ (default: {where})")


def next_steps(run_dir: Path, model: str, exported: Path | None) -> str:
    """What to run after training: export (unless done), predict with the export, serve it, compare the run."""
    export = exported.parent if exported else Path(EXPORTS_DIR) / model
    lines = [] if exported else [f"  python export_model.py {run_dir}          # -> {export}/<version>/, TF Serving's layout"]
    lines += [f'  python predict.py --model {export} "A quiet, moving film"',
              f"  python serve.py --models-dir {export.parent}               # http://127.0.0.1:8080 (TF Serving's REST API, a page)",
              f"  python evaluate.py --compare {run_dir}          # against the cheap anchors, on the same test reviews"]
    return "next:\n" + "\n".join(lines)


def add_trust_model_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--trust-model``: load a SavedModel whose graph uses ops this project's exports never use, or one without checksums."""
    parser.add_argument("--trust-model", action="store_true",
                        help="load the model even if its graph uses ops this project's exports never use (file, process or network ops) "
                             "or it has no checksums file: only for a model whose origin you trust (docs/security.md)")


def int_between(low: int, high: int) -> Callable[[str], int]:
    """argparse type: an integer in [low, high] (past ``high`` a number crashes or exhausts something instead of helping)."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low} and {high:,}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its message: "invalid integer value: 'x'"
    return parse


def number_between(low: float, high: float) -> Callable[[str], float]:
    """argparse type: a finite number in [low, high] (nan and inf are refused)."""

    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:  # False for nan
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:,g}")
        return value

    parse.__name__ = "number"
    return parse


class UsageError(SentimentError):
    """A command line that cannot be parsed (unknown flag, bad number, bad choice)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: ...`` and exit code 2, no usage block."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage; run_main prints the one line."""
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_config_flags(parser: argparse.ArgumentParser, defaults: Config) -> None:
    """Add one ``--flag`` per Config field; help shows ``defaults`` (the values this model will really use)."""
    for field in config_fields():
        kind = field_type(field)
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (default: {getattr(defaults, field.name)!r})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=None, help=help_text, metavar=field.name.upper())


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Return the Config fields the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in config_fields() if getattr(args, f.name, None) is not None}


def parse_training_args(argv: list[str], add_arguments: Callable[[argparse.ArgumentParser], None], description: str) -> tuple[argparse.Namespace, Config]:
    """Parse a training command line into (args, Config): defaults < model preset < --config file < flags."""
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    recipe = read_recipe(known.config) if known.config else {}
    model = known.model or recipe.pop("model", DEFAULT_MODEL)
    recipe.pop("model", None)
    parser = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="a recipe: JSON of Config fields, e.g. configs/lstm_len800.json (flags override it)")
    add_config_flags(parser, make_config(model, **recipe))
    add_arguments(parser)
    args = parser.parse_args(argv)
    flags = {k: v for k, v in config_overrides(args).items() if k != "model"}
    return args, make_config(model, **{**recipe, **flags})


def run_main(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; return its exit code, or print one ``error:`` line and return 2 (Ctrl-C: 130)."""
    try:
        code = main(sys.argv[1:] if argv is None else argv) or 0
        sys.stdout.flush()  # here, not at exit: a reader that went away is then caught below
        return code
    except BrokenPipeError:
        return reader_went_away()
    except SentimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable output dir, full disk: the user's to fix, not a bug
        if e.errno in DISK_ERRNOS and e.filename:
            print(f"error: {write_error(Path(e.filename), e)}", file=sys.stderr)
        else:
            print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def end_process(code: int) -> NoReturn:
    """Exit with ``code`` at once, output flushed: no teardown of modules and native objects.

    For a command whose work is done and written (its files atomically, its worker processes stopped): freeing
    every module and the LiteRT interpreter took ~15 ms of a one-review predict.py process (issue 37).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone, a stream closed: nothing more can be said
            pass
    os._exit(code)


def reader_went_away() -> int:
    """End quietly when the reader of stdout has closed it (``predict.py ... | head -1``), as Unix tools do.

    Python would otherwise complain again when flushing stdout at exit; stdout is pointed at
    /dev/null first. The exit code is the shell's for a death by SIGPIPE (128 + 13).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


class OneLineFormatter(logging.Formatter):
    """A log line is one line: control characters of its message (a request's ``%0a``, an escape code) shown as escapes.

    Only the message is escaped: a traceback, when one is logged, keeps its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """Escape the message before it is placed in the line."""
        record.message = printable(record.message)
        return super().formatMessage(record)


def setup_logging(verbose: bool = True) -> None:
    """Log INFO (or WARNING) lines to stderr, one line each; Python warnings go through logging, once each."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.captureWarnings(True)
    quiet_tensorflow_logger()
    logging.getLogger("absl").setLevel(logging.WARNING)  # tf.distribute's per-epoch "Sharding callback duration"


def quiet_tensorflow_logger() -> None:
    """Keep TF's Python logger to warnings, through our handler only (no ``INFO:tensorflow:`` duplicates)."""
    logger = logging.getLogger("tensorflow")
    logger.setLevel(logging.WARNING)  # e.g. "Assets written to: <temp dir>" on every export
    for handler in list(logger.handlers):  # TF adds its own when imported before basicConfig
        logger.removeHandler(handler)


class NoProgressBar:
    """What ``progress_bar`` returns when it is off: tqdm's face, without importing it (tqdm and its importlib.metadata: ~35 ms of a one-review start, by python -X importtime)."""

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(total: int | None, enabled: bool) -> "tqdm | NoProgressBar":  # noqa: F821
    """Return a tqdm progress bar on stderr (one that shows nothing when not ``enabled``)."""
    if not enabled:
        return NoProgressBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="review", file=sys.stderr)


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and probe devices with C++ notices silenced (they ignore TF_CPP_MIN_LOG_LEVEL)."""
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
