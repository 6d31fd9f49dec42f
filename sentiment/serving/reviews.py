"""Reviews in, predictions out: reading them (arguments, files, stdin), checking them, classifying in batches, formatting.

Engine-agnostic and TensorFlow-free: ``classify`` runs any predictor with ``probabilities(texts)``
and ``keeps_tail`` (the LiteRT engine here, or the SavedModel's in ``sentiment.prediction``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Protocol

import numpy as np

from sentiment.errors import SentimentError
from sentiment.serving import fast_tokenizer

log = logging.getLogger(__name__)

# The model reads only max_len tokens of a review; capping characters keeps a
# pathological input (a 1 MB "review") from costing seconds of tokenization.
MAX_REVIEW_CHARS = 100_000



class Engine(Protocol):
    """An engine: P(positive) float32 [n] for raw reviews, and which end of a long review its model reads."""

    keeps_tail: bool

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) per review."""


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
    predictor: Engine,
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
