"""Streamed CSV splits: corpora larger than memory, re-read by tf.data on every pass.

A large CSV, or a glob of CSV shards, becomes three :class:`Stream` sources whose reviews go
to train/validation/test by a seeded hash of their text, so nothing grows with the corpus
but the test reviews the report reads (at most ``stream_sample``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import glob
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

from sentiment.config import Config
from sentiment.data.sources import LABELS, Keep, Split, Splits, check_columns, csv_read_errors, load_splits, open_csv
from sentiment.errors import DataError

log = logging.getLogger(__name__)

STREAM_AUTO_BYTES = 256 * 2**20  # --stream auto: a CSV source larger than this is streamed
HASH_BUCKETS = 10_000  # resolution of the hash split (0.01 % of the reviews)
STREAM_ERROR = "streamed CSV"  # tags in-graph data errors so they surface as one-line DataErrors
_FILTER_CHUNK = 512  # reviews per vectorized filter call


@dataclasses.dataclass(frozen=True)
class Stream:
    """One split of a streamed CSV source (one file or shards): read by tf.data on each pass, never held in memory."""

    files: tuple[str, ...]
    part: str  # train, validation or test
    val_fraction: float
    test_fraction: float
    seed: int
    shard_count: int = 1  # with several workers, each reads every shard_count-th review of its part
    shard_index: int = 0
    keep: tuple[tuple[Keep, str], ...] = ()  # filters added by where(), with why they drop reviews
    streamed = True  # not a field: the kind of source

    def records(self) -> tf.data.Dataset:
        """Yield (text tf.string [], label float32 []) of this part, in file order."""
        low, high = hash_range(self.part, self.val_fraction, self.test_fraction)

        def in_part(text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
            bucket = tf.strings.to_hash_bucket_strong(text, HASH_BUCKETS, key=[self.seed, 0])
            return (bucket >= low) & (bucket < high)

        ds = csv_records(self.files).filter(in_part)
        ds = ds.shard(self.shard_count, self.shard_index) if self.shard_count > 1 else ds
        for keep, _ in self.keep:  # on chunks: the predicates are vectorized
            ds = ds.batch(_FILTER_CHUNK).map(functools.partial(kept_records, keep=keep), num_parallel_calls=tf.data.AUTOTUNE,
                                             deterministic=True).unbatch()
        return ds

    def bounded(self, limit: int) -> Split:
        """Read the first ``limit`` reviews of this part into memory (all of them for 0)."""
        ds = self.records().take(limit) if limit else self.records()
        texts, labels = [], []
        for batch_texts, batch_labels in ds.batch(4096).as_numpy_iterator():
            texts += [t.decode("utf-8", errors="replace") for t in batch_texts]
            labels.append(batch_labels.astype(np.int32))
        return Split(texts, np.concatenate(labels) if labels else np.zeros(0, np.int32))

    def shard(self, count: int, index: int) -> "Stream":
        """Return worker ``index`` of ``count``'s share of this part."""
        return dataclasses.replace(self, shard_count=count, shard_index=index)

    def where(self, keep: Keep, why: str) -> "Stream":
        """Return this part without the reviews ``keep`` rejects (dropped as read: they cannot be counted in advance)."""
        return dataclasses.replace(self, keep=self.keep + ((keep, why),))


def kept_records(texts: tf.Tensor, labels: tf.Tensor, keep: Keep) -> tuple[tf.Tensor, tf.Tensor]:
    """Return the chunk's records that ``keep`` accepts (texts tf.string [b], labels float32 [b]); it runs once per chunk."""
    mask = keep(texts)
    return tf.boolean_mask(texts, mask), tf.boolean_mask(labels, mask)


def hash_range(part: str, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Return the [low, high) hash buckets of ``part``: test first, then validation, the rest trains."""
    test_end = int(round(test_fraction * HASH_BUCKETS))
    val_end = test_end + int(round(val_fraction * HASH_BUCKETS))
    return {"test": (0, test_end), "validation": (test_end, val_end), "train": (val_end, HASH_BUCKETS)}[part]


def csv_files(source: str) -> list[str]:
    """Return the CSV files ``source`` names (a path or a glob of .csv/.csv.gz shards), sorted; DataError if none."""
    files = sorted(glob.glob(str(Path(source).expanduser()))) if glob.has_magic(source) else [str(Path(source).expanduser())]
    files = [f for f in files if Path(f).is_file()]
    if not files:
        raise DataError(f"no CSV file matches {source}" if glob.has_magic(source) else f"data not found: {source}")
    bad = [f for f in files if not f.endswith((".csv", ".csv.gz"))]
    if bad:
        raise DataError(f"{bad[0]} is not a .csv or .csv.gz file")
    return files


def should_stream(config: Config) -> bool:
    """Return True when ``config.data`` is read by tf.data: --stream on, or auto for a glob or a CSV over 256 MB."""
    source = config.data
    is_csv = glob.has_magic(source) or source.endswith((".csv", ".csv.gz"))
    if config.stream == "off" or not is_csv:
        if config.stream == "on" and not is_csv:
            raise DataError(f"--stream on reads CSV files only; {source} is not one")
        return False
    if config.stream == "on" or glob.has_magic(source):
        return True
    path = Path(source).expanduser()
    return path.is_file() and path.stat().st_size > STREAM_AUTO_BYTES  # a missing file: the in-memory loader says so


def load_streams(config: Config) -> tuple[Stream, Stream, Stream]:
    """Return the train, validation and test streams of a CSV source, after checking each file's header."""
    files = tuple(csv_files(config.data))
    columns = {csv_columns(Path(f)) for f in files}
    if len(columns) > 1:
        raise DataError(f"the CSV shards of {config.data} have different columns")
    streams = tuple(Stream(files, part, config.val_fraction, config.test_fraction, config.data_seed()) for part in ("train", "validation", "test"))
    log.info("data %s: streaming %d file(s)", config.data, len(files))
    return streams


def csv_columns(path: Path) -> tuple[int, int, int]:
    """Return (text column, label column, number of columns) of a CSV's header; DataError naming what is wrong."""
    with csv_read_errors(path), open_csv(path) as f:
        header = next(csv.reader(f), None)
    check_columns(path, header)
    return header.index("text"), header.index("label"), len(header)


def csv_records(files: tuple[str, ...]) -> tf.data.Dataset:
    """Read (text, label float32) from CSV files with tf.data's own CSV reader (quoted newlines and "" escapes included)."""
    text_col, label_col, _ = csv_columns(Path(files[0]))
    compression = "GZIP" if files[0].endswith(".gz") else ""
    if any(f.endswith(".gz") != files[0].endswith(".gz") for f in files):
        raise DataError("the CSV shards must all be gzipped or all plain")
    ds = tf.data.experimental.CsvDataset(list(files), [tf.string, tf.string], header=True, compression_type=compression,
                                         select_cols=sorted([text_col, label_col]))
    if text_col > label_col:
        ds = ds.map(lambda label, text: (text, label))
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(list(LABELS), list(LABELS.values())), default_value=-1)

    def parse(text: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        value = table.lookup(tf.strings.lower(tf.strings.strip(label)))
        check = tf.debugging.Assert(value >= 0, [f"{STREAM_ERROR}: a label is not one of {', '.join(LABELS)}:", label])
        with tf.control_dependencies([check]):
            return text, tf.cast(value, tf.float32)

    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@contextlib.contextmanager
def stream_errors_explained(source: str) -> Iterator[None]:
    """Turn a malformed row met while streaming (a TF error deep in an epoch) into a one-line DataError."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        message = " ".join(str(e.message).split())
        for marker in (STREAM_ERROR, "Expect ", "Unquoted", "Quote", "Invalid UTF-8"):  # ours, then CsvDataset's
            if marker in message:
                raise DataError(f"cannot stream {source}: {message[message.index(marker):][:300]}") from e
        raise


def load(config: Config) -> Splits:
    """Return the configured reviews as train, validation and test sources: streamed (see should_stream) or read into memory."""
    if should_stream(config):
        return Splits(*load_streams(config))
    return load_splits(config)
