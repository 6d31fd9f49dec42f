"""Reviews in, one result row per review out: reading (arguments, text files, CSV, stdin), checking, classifying, formatting.

Engine-agnostic and TensorFlow-free: ``classify`` runs any predictor with ``probabilities(texts)``
and ``keeps_tail`` (the LiteRT engine here, or the SavedModel's in ``sentiment.export.prediction``).
Everything streams: reviews are read, classified and printed in chunks of ``CHUNK_SIZE``, so a
file of any length runs in flat memory, and every input line (or CSV record, or argument) gives
exactly one result, a rejected one included, in input order.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import itertools
import json
import logging
import zlib
from typing import BinaryIO, Callable, Iterable, Iterator, Protocol, TextIO

import numpy as np

from sentiment.data import fast_tokenizer
from sentiment.errors import SentimentError, first_line, printable

log = logging.getLogger(__name__)

# The model reads only max_len tokens of a review; capping characters keeps a
# pathological input (a 1 MB "review") from costing seconds of tokenization.
MAX_REVIEW_CHARS = 100_000
# A line is read in pieces: its first and last KEEP_BYTES are kept (each holds MAX_REVIEW_CHARS characters of UTF-8,
# whichever end the model reads) and the middle dropped, so memory stays flat; past MAX_LINE_BYTES it is not a review.
KEEP_BYTES = 4 * MAX_REVIEW_CHARS
MAX_LINE_BYTES = 64 * 1024 * 1024
CHUNK_SIZE = 1024  # reviews read, classified and printed at a time
ARGUMENTS = "arguments"  # Review.input of command-line reviews
OUTPUT_FIELDS = ("input", "line", "text", "label", "probability", "error")
EXPLAIN_FIELD = "reasons"  # the output field --explain adds



class Engine(Protocol):
    """An engine: P(positive) float32 [n] for raw reviews, and which end of a long review its model reads."""

    keeps_tail: bool

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) per review."""

    def close(self) -> None:
        """Release what the engine started (worker processes)."""


@dataclasses.dataclass
class Review:
    """One input review: where it came from, its text, why it was rejected (if it was) and a CSV input's other columns."""

    text: str
    line: int = 0  # its line in the input (a CSV record's first line; an argument's position), from 1
    input: str = ARGUMENTS  # "arguments", "stdin" or the file's path
    problem: str | None = None
    columns: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def source(self) -> str:
        """Where the review came from, for messages: ``argument 2``, ``stdin line 3``, ``reviews.txt line 17``."""
        return f"argument {self.line}" if self.input == ARGUMENTS else f"{self.input} line {self.line}"


@dataclasses.dataclass
class Result:
    """One output row: a review and its label and P(positive), or the problem that kept it from being classified."""

    review: Review
    label: str | None = None
    probability: float | None = None
    reasons: dict | None = None  # with --explain: explanation.explain's "positive" and "negative" reasons, and its "cut" note

    @property
    def error(self) -> str | None:
        """Why the review was not classified (None if it was)."""
        return self.review.problem


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
    for review in reviews:  # the in-graph standardize, exactly (tests/data/test_fast_tokenizer.py), without TensorFlow
        if not fast_tokenizer.has_words(review.text):
            review.problem = "no words in review (only markup or punctuation)"


def decode_line(raw: bytes, number: int, input_name: str) -> Review:
    """One line's bytes as a review; invalid UTF-8 marks it rather than failing the whole input."""
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    try:
        return Review(raw.decode("utf-8"), number, input_name)  # blank lines are rejected as empty later
    except UnicodeDecodeError as e:
        return Review("", number, input_name, problem=f"not valid UTF-8 (byte {e.start})")


def read_lines(stream: BinaryIO | bytes, input_name: str = "stdin") -> Iterator[Review]:
    """Yield one review per line of a byte stream, as it is read; invalid UTF-8 lines are marked, not fatal.

    Only ``\\n`` ends a line (a ``\\r\\n`` ending loses its ``\\r``), so line numbers match ``wc -l`` and
    ``sed -n Np``: a lone ``\\r``, or a Unicode line separator, inside a review stays in it.
    """
    lines = io.BytesIO(stream) if isinstance(stream, bytes) else stream
    number = 0
    try:
        for number, raw in enumerate(bounded_lines(lines, input_name), start=1):  # split at b"\n" only
            yield decode_line(raw, number, input_name)
    except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt .gz: the lines before it were yielded
        raise SentimentError(f"cannot read {input_name} after line {number}: {first_line(e)}") from e


def bounded_lines(stream: BinaryIO, input_name: str, keep: int = KEEP_BYTES, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Yield a binary stream's lines, each read in pieces of ``keep`` bytes: a long one as its first and last ``keep`` bytes.

    The middle of a long line is never held (flat memory on a huge line or a gzip bomb); a line over ``limit``
    bytes (``/dev/zero``) is a one-line error after the lines before it.
    """
    number = 0
    while True:
        piece = stream.readline(keep)
        if not piece:
            return
        number += 1
        if piece.endswith(b"\n") or len(piece) < keep:
            yield piece
            continue
        head, tail, size = piece, b"", len(piece)
        while not tail.endswith(b"\n"):
            more = stream.readline(keep)
            if not more:
                break
            size += len(more)
            if size > limit:
                raise SentimentError(f"{input_name} line {number} is over {limit // 2**20} MB without a line break: "
                                     f"not a review (reviews are read up to {MAX_REVIEW_CHARS:,} characters)")
            tail = (tail + more)[-keep:]
        log.warning("%s line %d: %d bytes; only its first and last %d are read", input_name, number, size, keep)
        yield whole_characters(head, tail)


def whole_characters(head: bytes, tail: bytes) -> bytes:
    """A long line's kept ends joined by a space, each cut to whole UTF-8 characters (check_review then keeps the end the model reads)."""
    head = head[: len(head) - trailing_partial(head)]
    start = 0
    while start < min(len(tail), 4) and tail[start] & 0xC0 == 0x80:  # continuation bytes of a character cut in two
        start += 1
    return head + b" " + tail[start:]


def trailing_partial(data: bytes) -> int:
    """How many bytes at the end of ``data`` begin a UTF-8 character that is cut off (0 if none)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the lead byte of the last character
            needed = 2 if byte >= 0xC0 else 1
            needed = 3 if byte >= 0xE0 else needed
            needed = 4 if byte >= 0xF0 else needed
            return back if needed > back else 0
    return 0


def read_csv(path: str, text_column: str) -> Iterator[Review]:
    """Yield one review per CSV record (header first), its other columns kept; records with the wrong field count are marked."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        handle = opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as e:
        raise SentimentError(f"cannot read {path}: {e.strerror or e}") from e
    with handle:
        yield from read_csv_records(handle, path, text_column)


def read_csv_text(text: str, text_column: str = "text", name: str = "<text>") -> Iterator[Review]:
    """Yield the reviews of CSV text held in memory, as ``read_csv`` does a file's."""
    return read_csv_records(io.StringIO(text, newline=""), name, text_column)


def read_csv_records(handle: TextIO, path: str, text_column: str) -> Iterator[Review]:
    """Yield one review per record of an open CSV text stream (header first); see ``read_csv``."""
    # strict: a stray opening quote that swallows later lines, or a quote closing mid-field, is an error naming the
    # record's first line (after the records before it), not one silent giant review.
    reader, line = csv.reader(handle, strict=True), 1
    try:
        header = next(reader, None)
        if not header or text_column not in header:
            found = ", ".join(map(repr, header or [])) or "nothing: the file is empty"
            raise SentimentError(f"{path} has no column {text_column!r} (found: {found}); name it with --text-column")
        where, line = header.index(text_column), reader.line_num + 1
        names = output_names(header, where)
        for record in reader:
            yield csv_review(record, header, names, where, line, path)
            line = reader.line_num + 1
    except csv.Error as e:  # a quote that never closes, or closes mid-field; NUL bytes
        raise SentimentError(f"cannot read CSV {path}: the record starting on line {line} is malformed ({e}; a stray quote?); "
                             "the records before it were read") from e
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:  # a truncated or corrupt gzip
        raise SentimentError(f"cannot read CSV {path} near line {reader.line_num}: {first_line(e)}") from e


def csv_review(record: list[str], header: list[str], names: list[str], where: int, line: int, path: str) -> Review:
    """One CSV record as a review: the text column's cell, the other cells by their output names (``output_names``)."""
    if len(record) != len(header):  # still a row, with every column (empty), so the output's columns never shift
        return Review("", line, path, problem=f"{len(record)} fields where the header has {len(header)}", columns=dict.fromkeys(names, ""))
    values = [value for i, value in enumerate(record) if i != where]
    for name, value in zip(header, record):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return Review("", line, path, problem=f"column {name!r} is not valid UTF-8 (character {e.start + 1})", columns=dict.fromkeys(names, ""))
    return Review(record[where], line, path, columns=dict(zip(names, values)))


def output_names(header: list[str], where: int) -> list[str]:
    """The output names of a CSV's columns other than the text (at ``where``): each unique, none an output field's.

    A column that would clash with an output field (``label``, ``reasons``) or an earlier column becomes
    ``input_<name>`` (again, until it is unique), so no input value is ever overwritten.
    """
    taken, names = {*OUTPUT_FIELDS, EXPLAIN_FIELD}, []
    for i, column in enumerate(header):
        if i == where:
            continue
        name = column
        while name in taken:
            name = f"input_{name}"
        taken.add(name)
        names.append(name)
    return names


def is_csv(path: str) -> bool:
    """Return True for a file read as CSV with a header (``.csv`` or ``.csv.gz``) rather than one review per line."""
    return path.lower().endswith((".csv", ".csv.gz"))


def label_for(probability: float, threshold: float) -> str:
    """Return ``positive`` when ``probability >= threshold``, else ``negative``."""
    return "positive" if probability >= threshold else "negative"


def classify_chunks(
    predictor: Engine,
    reviews: Iterable[Review],
    threshold: float = 0.5,
    chunk_size: int = CHUNK_SIZE,
    on_batch: Callable[[int], None] | None = None,
    explain: int = 0,
) -> Iterator[list[Result]]:
    """Classify reviews ``chunk_size`` at a time; yield each chunk's results (one per review, in input order).

    An engine with ``submit(texts)`` (LiteRT with worker processes) scores a chunk while the next one
    is read and checked and the previous one is printed. ``explain``: also give each classified review
    its ``explain`` strongest reasons each way (``sentiment.evaluation.explanation``).
    """
    if not 0.0 <= threshold <= 1.0:
        raise SentimentError(f"threshold must be between 0 and 1, got {threshold}")
    if chunk_size < 1:
        raise SentimentError(f"batch size must be at least 1, got {chunk_size}")
    reviews, pending, error = iter(reviews), None, None
    while True:
        chunk, error = read_chunk(reviews, chunk_size) if error is None else ([], error)
        started = start_chunk(predictor, chunk) if chunk else None
        if pending is not None:
            yield finish_chunk(predictor, *pending, threshold, on_batch, explain)
        if started is None:
            if error is not None:  # the rows read before it are out: now the one-line error
                raise error
            return
        pending = started


def read_chunk(reviews: Iterator[Review], size: int) -> tuple[list[Review], SentimentError | None]:
    """Read up to ``size`` reviews; a read error is returned beside the reviews read before it, so those are still classified."""
    chunk: list[Review] = []
    try:
        chunk.extend(itertools.islice(reviews, size))
    except SentimentError as e:
        return chunk, e
    return chunk, None


def start_chunk(predictor: Engine, chunk: list[Review]) -> tuple[list[Review], list[Review], Callable[[], np.ndarray]]:
    """Check a chunk's reviews and start scoring the valid ones; return them all, the valid ones, and how to get their scores."""
    checked = [check_review(r, predictor.keeps_tail) if r.problem is None else r for r in chunk]
    reject_wordless([r for r in checked if r.problem is None])
    valid = [r for r in checked if r.problem is None]
    texts = [r.text for r in valid]
    submit = getattr(predictor, "submit", None)
    if submit is not None:
        return checked, valid, submit(texts)
    probabilities = predictor.probabilities(texts) if texts else np.zeros(0, np.float32)
    return checked, valid, lambda: probabilities


def finish_chunk(predictor: Engine, checked: list[Review], valid: list[Review], scores: Callable[[], np.ndarray], threshold: float,
                 on_batch: Callable[[int], None] | None, explain: int) -> list[Result]:
    """Wait for a chunk's scores; return its results in input order (explained, if asked)."""
    probabilities = dict(zip(map(id, valid), map(float, scores())))
    if on_batch:
        on_batch(len(valid))
    results = [result_for(r, probabilities.get(id(r)), threshold) for r in checked]
    if explain:
        for result in results:
            if result.error is None:
                from sentiment.evaluation import explanation  # only with --explain

                why = explanation.explain(predictor.probabilities, fast_tokenizer.tokenize(result.review.text), explain, predictor.keeps_tail)
                result.reasons = {"positive": why["positive"], "negative": why["negative"], "cut": why["cut"]}
    return results


def result_for(review: Review, probability: float | None, threshold: float) -> Result:
    """The output row of one review (no label for a rejected one)."""
    if probability is None:
        return Result(review)
    return Result(review, label_for(probability, threshold), probability)


def classify(predictor: Engine, reviews: Iterable[Review], threshold: float = 0.5, chunk_size: int = CHUNK_SIZE, **kwargs) -> list[Result]:
    """Classify reviews; return one result per review, in input order (see ``classify_chunks``)."""
    return [r for chunk in classify_chunks(predictor, reviews, threshold, chunk_size, **kwargs) for r in chunk]


def gather_reviews(arguments: list[str], file: str | None, stdin: BinaryIO, text_column: str | None = None) -> Iterator[Review]:
    """Stream reviews from command-line arguments, ``-`` (stdin, one per line) and a file (one per line, or CSV records)."""
    if not arguments and not file:
        raise SentimentError("no reviews given: pass them as arguments, with --file, or '-' for stdin")
    csv_file = bool(file) and is_csv(file)
    if text_column and not csv_file:
        raise SentimentError("--text-column names a column of a CSV --file (a .csv or .csv.gz file)")
    if csv_file:
        from_file = peek(read_csv(file, text_column or "text"))  # a missing column is reported before anything runs
    else:
        from_file = read_lines(open_file(file), file) if file else ()
    return itertools.chain(
        (argument_review(i, text) for i, text in enumerate(arguments, start=1) if text != "-"),
        read_lines(stdin, "stdin") if "-" in arguments else (),
        from_file,
    )


def peek(items: Iterator[Review]) -> Iterator[Review]:
    """Read the first item now (raising what reading raises) and yield it with the rest."""
    first = next(items, None)
    return itertools.chain([first] if first is not None else [], items)


def open_file(path: str) -> BinaryIO:
    """Open a text file of one review per line (gunzipping ``.gz``) as bytes, or raise a one-line error."""
    try:
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as e:
        raise SentimentError(f"cannot read {path}: {e.strerror or e}") from e


def argument_review(position: int, text: str) -> Review:
    """A command-line review; bytes that are not UTF-8 (kept by Python as surrogates) mark it, as for file lines."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return Review("", position, ARGUMENTS, problem=f"not valid UTF-8 (character {e.start + 1})")
    return Review(text, position, ARGUMENTS)


def row_fields(result: Result) -> dict:
    """The JSON/CSV fields of one result: input, line, the CSV input's other columns, text, then label and probability (and reasons) or error."""
    review = result.review
    fields = {"input": review.input, "line": review.line, **review.columns, "text": review.text}
    if result.error is not None:
        return {**fields, "error": result.error}
    fields = {**fields, "label": result.label, "probability": round(result.probability, 6)}
    if result.reasons is not None:
        fields[EXPLAIN_FIELD] = reasons_fields(result.reasons)
    return fields


def reasons_fields(reasons: dict) -> dict:
    """A review's reasons as JSON, as predict.py, the server and the Python API give them: phrase and signed weight each
    way, and ``cut`` (what a long review's explanation left out)."""
    fields = {side: [{"phrase": r.phrase, "weight": round(r.weight, 4)} for r in reasons[side]] for side in ("positive", "negative")}
    return {**fields, "cut": reasons.get("cut")}


def csv_header(columns: Iterable[str] = (), explain: bool = False) -> list[str]:
    """The CSV output's header: input, line, the input's other columns, text, label, probability, (reasons,) error."""
    return [*OUTPUT_FIELDS[:2], *columns, *OUTPUT_FIELDS[2:5], *([EXPLAIN_FIELD] if explain else []), OUTPUT_FIELDS[5]]


def describe_reasons(reasons: dict) -> str:
    """One line of reasons: ``+great (+1.23); +loved it (+0.80); -boring (-0.95)``; weights move the logit of P(positive); a cut is said last."""
    text = "; ".join(f"{'+' if r.weight > 0 else '-'}{r.phrase} ({r.weight:+.2f})" for r in [*reasons["positive"], *reasons["negative"]])
    return f"{text or 'no word moves it'} (cut: {reasons['cut']})" if reasons.get("cut") else text


def format_results(results: Iterable[Result], fmt: str = "text", header: bool = True, explain: bool = False) -> Iterator[str]:
    """Render results as ``text`` (label, probability, review; rejected ones are left to the caller), JSON lines or CSV rows."""
    rows = iter(results)
    if fmt == "csv":
        first = next(rows, None)
        if first is None:
            return
        names = csv_header(first.review.columns, explain)
        if header:
            yield csv_line(names)
        for result in itertools.chain([first], rows):
            fields = row_fields(result)
            if "probability" in fields:
                fields["probability"] = f"{result.probability:.6f}"
            if result.reasons is not None:
                fields[EXPLAIN_FIELD] = describe_reasons(result.reasons)
            yield csv_line([fields.get(name, "") for name in names])
        return
    for result in rows:
        if fmt == "json":
            yield json.dumps(row_fields(result), ensure_ascii=False)
        elif result.error is None:
            text = printable(result.review.text)
            preview = text if len(text) <= 70 else text[:67] + "..."
            yield f"{result.label:<8} {result.probability:.3f}  {preview}"
            if result.reasons is not None:
                yield f"         why: {describe_reasons(result.reasons) or 'no word moves it'}"


def csv_line(values: list) -> str:
    """One CSV record (quoted as needed: a review may hold commas, quotes or newlines)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().rstrip("\n")
