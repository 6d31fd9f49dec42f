"""Classifying reviews with an exported model (no Keras model code or flags needed).

Two engines: the SavedModel (``Predictor``, TensorFlow) and its LiteRT twin
(``litert_engine.LiteRTPredictor``, no TensorFlow). Importing this module does not import
TensorFlow, so predict.py starts in a fraction of a second when LiteRT serves.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

import numpy as np

from sentiment import fast_tokenizer, litert_engine
from sentiment.artifacts import METADATA_FILE, SIGNATURE, numbered_versions, read_json
from sentiment.config import Config
from sentiment.errors import ModelError, SentimentError, first_line
from sentiment.rundir import RunDir

if TYPE_CHECKING:
    from sentiment.evaluation import Scorer

log = logging.getLogger(__name__)

# The model reads only max_len tokens of a review; capping characters keeps a
# pathological input (a 1 MB "review") from costing seconds of tokenization.
MAX_REVIEW_CHARS = 100_000

ENGINES = ("auto", "litert", "savedmodel")
# --engine auto runs LiteRT for up to ``auto_max_reviews`` reviews, the SavedModel beyond. Where
# the two cross depends on the model: LiteRT starts ~4 s sooner, but runs reviews one at a time.
# On the shipped lstm/1 (800 tokens) LiteRT was faster at every size up to 10,000 reviews; on
# wide_lstm/2 (256 tokens) the SavedModel was faster from ~7,800. benchmarks/predict_speed.py
# --record measures it and writes it into the export's litert.json; without it, LiteRT always.


@dataclasses.dataclass
class Review:
    """One input review, where it came from (for messages), and why it was rejected, if it was."""

    source: str  # e.g. "argument 2" or "line 17"
    text: str
    problem: str | None = None


@dataclasses.dataclass
class Prediction:
    """A classified review."""

    source: str
    text: str
    label: str
    probability: float  # P(positive)


class Predictor:
    """A loaded SavedModel's ``serving_default`` signature and its metadata."""

    engine = "savedmodel"

    def __init__(self, path: Path):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        self.path = path
        if not (path / "variables").is_dir():
            raise ModelError(f"cannot load model {path}: its variables/ folder is missing (an incomplete copy?)")
        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures[SIGNATURE]
        except (OSError, KeyError, ValueError, IndexError, tf.errors.OpError, DecodeError) as e:  # DecodeError: a truncated saved_model.pb; IndexError: truncated variables
            raise ModelError(f"cannot load model {path}: {first_line(e)}") from e
        self._loaded = loaded  # keeps the signature's variables alive
        meta = path / METADATA_FILE
        self.metadata = read_json(meta) if meta.exists() else {}
        # Which end of a long review the model reads (older exports: the head).
        self.keeps_tail = self.metadata.get("config", {}).get("truncate") == "tail"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) float32 [n] for raw review strings."""
        import tensorflow as tf

        out = self._fn(text=tf.constant(texts, dtype=tf.string))
        return out["probability"].numpy().astype(np.float32)


def resolve_model(spec: str, root: str | Path = "saved_models") -> Path:
    """Turn a SavedModel dir, a model dir of versions, or a name under ``root`` into a version dir."""
    path = Path(spec)
    if not path.exists():
        path = Path(root) / spec
        if not path.exists():
            names = sorted(p.name for p in Path(root).glob("*") if p.is_dir()) if Path(root).is_dir() else []
            raise ModelError(f"no model {spec!r}: not a directory, nor a name under {root}/ (available: {', '.join(names) or 'none'})")
    if (path / "saved_model.pb").exists():
        return path
    versions = [p for p in numbered_versions(path) if p.is_dir()]
    if not versions:
        raise ModelError(f"{path} is neither a SavedModel (no saved_model.pb) nor a folder of numbered versions")
    if not (versions[-1] / "saved_model.pb").exists():
        raise ModelError(f"{versions[-1]} is not a SavedModel (no saved_model.pb)")
    return versions[-1]


def choose_engine(engine: str, path: Path, n_reviews: int) -> str:
    """Return the engine to run: ``litert`` or ``savedmodel`` (``auto``: LiteRT when the model has it and the input is small)."""
    if engine not in ENGINES:
        raise SentimentError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "litert":
        if not litert_engine.litert_installed():
            raise SentimentError(f"--engine litert needs the ai-edge-litert package: pip install {litert_engine.PACKAGE}")
        if not litert_engine.has_litert(path):
            raise ModelError(f"{path} has no LiteRT model; add one with: python export_model.py --add-litert {path}")
        return engine
    limit = litert_engine.auto_max_reviews(path)
    small = limit is None or n_reviews <= limit
    if engine == "auto" and small and litert_engine.has_litert(path) and litert_engine.litert_installed():
        return "litert"
    return "savedmodel"


def check_review(review: Review, keep_tail: bool) -> Review:
    """Mark empty reviews as rejected and cap very long ones at the end the model reads."""
    if not review.text.strip():
        review.problem = "empty review"
    elif len(review.text) > MAX_REVIEW_CHARS:
        end = "last" if keep_tail else "first"
        log.warning("%s: %d characters; only the %s %d are read", review.source, len(review.text), end, MAX_REVIEW_CHARS)
        review.text = review.text[-MAX_REVIEW_CHARS:] if keep_tail else review.text[:MAX_REVIEW_CHARS]
    return review


def reject_wordless(reviews: list[Review]) -> None:
    """Mark reviews with no words left after standardization (e.g. only markup or punctuation)."""
    for review in reviews:  # the in-graph standardize, exactly (tests/test_fast_tokenizer.py), without TensorFlow
        if not fast_tokenizer.standardize(review.text):
            review.problem = "no words in review (only markup or punctuation)"


def read_lines(data: bytes, source: str = "line") -> Iterator[Review]:
    """Split file bytes into one review per line; invalid UTF-8 lines are marked, not fatal.

    Only ``\\n`` ends a line (a ``\\r\\n`` ending loses its ``\\r``), so line numbers match ``wc -l`` and
    ``sed -n Np``: a lone ``\\r``, or a Unicode line separator, inside a review stays in it.
    """
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline ending the last line
    for number, raw in enumerate(lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            yield Review(f"{source} {number}", raw.decode("utf-8"))  # blank lines are rejected as empty later
        except UnicodeDecodeError as e:
            yield Review(f"{source} {number}", "", problem=f"not valid UTF-8 (byte {e.start})")


def label_for(probability: float, threshold: float) -> str:
    """Return ``positive`` when ``probability >= threshold``, else ``negative``."""
    return "positive" if probability >= threshold else "negative"


def classify(
    predictor: Predictor | litert_engine.LiteRTPredictor,
    reviews: Iterable[Review],
    threshold: float = 0.5,
    batch_size: int = 128,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[Prediction], list[Review]]:
    """Classify valid reviews in batches; return the predictions and the rejected reviews."""
    if not 0.0 <= threshold <= 1.0:
        raise SentimentError(f"threshold must be between 0 and 1, got {threshold}")
    if batch_size < 1:
        raise SentimentError(f"batch size must be at least 1, got {batch_size}")
    checked = [check_review(r, predictor.keeps_tail) if r.problem is None else r for r in reviews]
    reject_wordless([r for r in checked if r.problem is None])
    valid = [r for r in checked if r.problem is None]
    predictions = []
    for start in range(0, len(valid), batch_size):
        batch = valid[start : start + batch_size]
        probs = predictor.probabilities([r.text for r in batch])
        predictions += [Prediction(r.source, r.text, label_for(float(p), threshold), float(p)) for r, p in zip(batch, probs)]
        if on_batch:
            on_batch(len(batch))
    return predictions, [r for r in checked if r.problem is not None]


def gather_reviews(arguments: list[str], file: str | None, stdin: BinaryIO) -> list[Review]:
    """Collect reviews from command-line arguments, a file (one per line) and ``-`` for stdin."""
    reviews = [argument_review(f"argument {i}", text) for i, text in enumerate(arguments, start=1) if text != "-"]
    if "-" in arguments:
        reviews += read_lines(stdin.read(), "stdin line")
    if file:
        try:
            data = Path(file).read_bytes()
        except OSError as e:
            raise SentimentError(f"cannot read {file}: {e.strerror or e}") from e
        reviews += read_lines(data, f"{file} line")
    if not reviews:
        raise SentimentError("no reviews given: pass them as arguments, with --file, or '-' for stdin")
    return reviews


def argument_review(source: str, text: str) -> Review:
    """A command-line review; bytes that are not UTF-8 (kept by Python as surrogates) mark it, as for file lines."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return Review(source, "", problem=f"not valid UTF-8 (character {e.start + 1})")
    return Review(source, text)


def format_predictions(predictions: list[Prediction], fmt: str = "text") -> Iterator[str]:
    """Render predictions as ``text`` (label, probability, review), JSON lines or CSV."""
    if fmt == "json":
        for p in predictions:
            yield json.dumps({"text": p.text, "label": p.label, "probability": round(p.probability, 6)}, ensure_ascii=False)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["text", "label", "probability"])
        writer.writerows([p.text, p.label, f"{p.probability:.6f}"] for p in predictions)
        yield buf.getvalue().rstrip("\n")  # one block: quoted fields may hold newlines
    else:
        for p in predictions:
            preview = p.text if len(p.text) <= 70 else p.text[:67] + "..."
            yield f"{p.label:<8} {p.probability:.3f}  {preview}"


def load_scorer(spec: str, models_dir: str | Path) -> tuple[Scorer, Config, str]:
    """Return a raw-text scorer, the model's training config and a display name, for a run dir or an exported model."""
    import tensorflow as tf

    from sentiment import models

    run = RunDir(Path(spec))
    if run.config.exists() and not run.model.exists() and not (run.path / "saved_model.pb").exists():
        raise ModelError(f"{spec} is a training run that did not finish (no model.keras yet); "
                         "rerun its train.py command with the same --run-dir to resume it")
    if run.model.exists() and run.config.exists():
        model = models.load_model(run.model)
        return (lambda texts: model.predict(tf.constant(texts), verbose=0)), run.load_config(), f"run {spec}"
    predictor = Predictor(resolve_model(spec, models_dir))
    if "config" not in predictor.metadata:
        raise ModelError(f"{predictor.path} has no training config in its metadata")
    return predictor.probabilities, Config.from_dict(predictor.metadata["config"]), f"model {predictor.path}"
