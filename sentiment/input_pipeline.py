"""IMDB reviews from TFDS, a CSV file or the Stanford aclImdb layout, into tf.data.

Sources of IMDB's size (50k reviews, ~65 MB) are read into the same in-memory
:class:`Splits`. A large CSV, or a glob of CSV shards, is streamed instead: each
:class:`Stream` is re-read by tf.data on every pass and its reviews are assigned to
train/validation/test by a seeded hash of their text, so nothing grows with the corpus
but the test split the report reads. Either way tf.data batches go through the
model's own preprocessing layer (``sentiment.preprocessing``), text → token ids.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import gzip
import logging
import queue
import socket
import sys
import tarfile
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import numpy as np
import tensorflow as tf

from sentiment.config import Config
from sentiment.errors import DataError, first_line

log = logging.getLogger(__name__)

LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}
TFDS_NAME = "imdb_reviews/plain_text"
TFDS_ARCHIVE = "aclImdb_v1.tar.gz"  # what TFDS downloads, and what it takes from <data_dir>/downloads/manual/
# Prepared data comes from Google Cloud Storage when it can, else the archive from Stanford.
TFDS_HOSTS = (("storage.googleapis.com", 443), ("ai.stanford.edu", 80))
# The whole reachability probe, DNS lookups included: offline, train.py fails well within 10 s.
PROBE_DEADLINE_SECONDS = 4.0
TFDS_ALTERNATIVES = "or pass --data a CSV file (text,label), an aclImdb folder or aclImdb_v1.tar.gz"
# Per-bucket upper bounds (tokens); batches hold reviews of similar length so a
# 60-token review is not padded to 500.
BUCKET_BOUNDARIES = (32, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
_ENCODE_CHUNK = 512  # reviews preprocessed per parallel map call
STREAM_AUTO_BYTES = 256 * 2**20  # --stream auto: a CSV source larger than this is streamed
STREAM_SHUFFLE_BUFFER = 20_000  # reviews; a streamed epoch is shuffled within this window
HASH_BUCKETS = 10_000  # resolution of the hash split (0.01 % of the reviews)
STREAM_ERROR = "streamed CSV"  # tags in-graph data errors so they surface as one-line DataErrors
# Under XLA every new batch shape is a new compilation (seconds each): id rows are padded to
# the next power of two (token ids: at most max_len), a few shapes instead of one per batch.
XLA_WIDTHS = tuple(2**k for k in range(6, 17))


@dataclasses.dataclass
class Split:
    """Reviews and their labels (0 negative, 1 positive)."""

    texts: list[str]
    labels: np.ndarray  # int32, shape [n]

    def __len__(self) -> int:
        return len(self.texts)


@dataclasses.dataclass
class Splits:
    """The train, validation and test reviews of one data source."""

    train: Split
    validation: Split
    test: Split

    def sizes(self) -> dict[str, int]:
        """Return the number of reviews per split."""
        return {name: len(split) for name, split in self.items()}

    def items(self) -> list[tuple[str, Split]]:
        """Return (name, split) pairs in train, validation, test order."""
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]


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

    def records(self) -> tf.data.Dataset:
        """Yield (text tf.string [], label float32 []) of this part, in file order."""
        low, high = hash_range(self.part, self.val_fraction, self.test_fraction)

        def in_part(text: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
            bucket = tf.strings.to_hash_bucket_strong(text, HASH_BUCKETS, key=[self.seed, 0])
            return (bucket >= low) & (bucket < high)

        ds = csv_records(self.files).filter(in_part)
        return ds.shard(self.shard_count, self.shard_index) if self.shard_count > 1 else ds

    def head(self, n: int = 0) -> Split:
        """Read the first ``n`` reviews of this part into memory (all of them for 0)."""
        ds = self.records().take(n) if n else self.records()
        texts, labels = [], []
        for batch_texts, batch_labels in ds.batch(4096).as_numpy_iterator():
            texts += [t.decode("utf-8", errors="replace") for t in batch_texts]
            labels.append(batch_labels.astype(np.int32))
        return Split(texts, np.concatenate(labels) if labels else np.zeros(0, np.int32))

    def sharded(self, count: int, index: int) -> "Stream":
        """Return worker ``index`` of ``count``'s share of this part."""
        return dataclasses.replace(self, shard_count=count, shard_index=index)


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
    streams = tuple(Stream(files, part, config.val_fraction, config.test_fraction, config.seed) for part in ("train", "validation", "test"))
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


# ---------------------------------------------------------------------------
# Sources


def load_splits(config: Config) -> Splits:
    """Load the source named by ``config.data`` and cap the training reviews at ``config.max_examples``."""
    source = config.data
    if source == "imdb":
        splits = load_tfds(config.val_fraction, config.tfds_data_dir)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"data not found: {source} (give 'imdb', a CSV file or an aclImdb folder/tarball)")
        if path.is_dir() or path.name.endswith((".tar.gz", ".tgz", ".tar")):
            splits = load_aclimdb(path, config.val_fraction, config.seed)
        elif path.name.endswith((".csv", ".csv.gz")):
            splits = load_csv(path, config.val_fraction, config.test_fraction, config.seed)
        else:
            raise DataError(f"unsupported data file {source}: expected .csv, .csv.gz, an aclImdb folder or .tar.gz")
    if config.max_examples and len(splits.train) > config.max_examples:
        splits.train = Split(splits.train.texts[: config.max_examples], splits.train.labels[: config.max_examples])
    log.info("data %s: %s", source, splits.sizes())
    return splits


def load_tfds(val_fraction: float, data_dir: str = "") -> Splits:
    """Load TFDS ``imdb_reviews`` (downloading and preparing it once): a tail slice of train validates, test tests."""
    try:
        import tensorflow_datasets as tfds  # imported here: only this source needs it

        builder = tfds.builder(TFDS_NAME, data_dir=data_dir or None)
    except Exception as e:  # a broken install (e.g. a missing dependency) must not look like a crash
        raise DataError(f"cannot use TFDS {TFDS_NAME} ({first_line(e)}); {TFDS_ALTERNATIVES}") from e
    with variant_folder_notices_dropped():
        if not builder.is_prepared():
            manual_archive = Path(builder.data_dir_root) / "downloads" / "manual" / TFDS_ARCHIVE
            if not manual_archive.exists():
                check_download_reachable(builder.data_dir_root)
        try:
            parts = tfds.load(TFDS_NAME, split=tfds_split_names(val_fraction), as_supervised=True, data_dir=data_dir or None)
        except Exception as e:  # download, checksum and I/O failures all look different
            raise DataError(f"cannot load TFDS {TFDS_NAME} ({first_line(e)}); {TFDS_ALTERNATIVES}") from e
    return Splits(*(_split_from_pairs(tfds.as_numpy(part)) for part in parts))


@contextlib.contextmanager
def variant_folder_notices_dropped() -> Iterator[None]:
    """Hide TFDS's absl warning "Variant folder ... has no dataset_info.json" for the block (it only means: not prepared yet)."""
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(is_not_variant_folder_notice)
    try:
        yield
    finally:
        absl_logger.removeFilter(is_not_variant_folder_notice)


def is_not_variant_folder_notice(record: logging.LogRecord) -> bool:
    """logging filter: False for the "Variant folder ..." notices TFDS's is_prepared() logs about unprepared data."""
    return not str(record.msg).startswith("Variant folder ")


def check_download_reachable(data_dir_root: str | Path, deadline: float = PROBE_DEADLINE_SECONDS) -> None:
    """Raise a DataError within ``deadline`` seconds when no host TFDS downloads IMDB from answers (instead of minutes of retries)."""
    if urllib.request.getproxies().get("http") or urllib.request.getproxies().get("https"):
        return  # behind a proxy a direct probe says nothing; let TFDS try
    errors = probe_hosts(TFDS_HOSTS, deadline)
    if errors is None:
        return
    raise DataError(
        f"cannot download TFDS {TFDS_NAME}: no network ({'; '.join(errors)}). "
        f"Offline, put {TFDS_ARCHIVE} in {Path(data_dir_root) / 'downloads' / 'manual'}/ or pass "
        f"--tfds-data-dir where it is prepared, {TFDS_ALTERNATIVES}"
    )


def probe_hosts(hosts: Iterable[tuple[str, int]], deadline: float) -> list[str] | None:
    """Connect to all ``hosts`` at once (DNS lookup included); return None when one answers in time, else why each failed.

    Each probe runs in a daemon thread: one stuck past ``deadline`` (a DNS lookup cannot be
    cancelled) is abandoned, never waited for, not even at interpreter exit.
    """
    hosts = list(hosts)
    answers: queue.Queue[tuple[int, str | None]] = queue.Queue()
    for index, (host, port) in enumerate(hosts):
        probe = threading.Thread(target=probe_host, args=(index, host, port, deadline, answers), name=f"probe {host}", daemon=True)
        probe.start()
    end = time.monotonic() + deadline
    failures: dict[int, str] = {}
    while len(failures) < len(hosts):
        try:
            index, problem = answers.get(timeout=max(end - time.monotonic(), 0.0))
        except queue.Empty:
            break
        if problem is None:
            return None
        failures[index] = problem
    return [f"{host}: {failures.get(i, f'no answer within {deadline:g} s')}" for i, (host, _) in enumerate(hosts)]


def probe_host(index: int, host: str, port: int, timeout: float, answers: queue.Queue) -> None:
    """Open and close one TCP connection; put (index, None) on ``answers``, or (index, why it failed)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        answers.put((index, None))
    except OSError as e:
        answers.put((index, str(e.strerror or e)))


def tfds_split_names(val_fraction: float) -> list[str]:
    """Return TFDS split strings for train, validation (a deterministic tail slice of train) and test."""
    cut = int(round((1.0 - val_fraction) * 100))
    if not 0 < cut < 100:
        raise DataError(f"val_fraction {val_fraction} leaves no training or no validation data")
    return [f"train[:{cut}%]", f"train[{cut}%:]", "test"]


def load_csv(path: Path, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Load a ``text,label`` CSV (optionally gzipped) and split it with a seeded shuffle."""
    return split_seeded(_split_from_pairs(read_csv_rows(path)), val_fraction, test_fraction, seed)


def read_csv_rows(path: Path) -> list[tuple[str, int]]:
    """Read (text, label) rows from a CSV with ``text`` and ``label`` columns."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # reviews can exceed the 128 KiB default
    rows = []
    with csv_read_errors(path), open_csv(path) as f:
        reader = csv.DictReader(f)
        check_columns(path, reader.fieldnames)
        for row_number, row in enumerate(reader, start=1):
            rows.append((row["text"] or "", parse_label(row["label"], path, row_number, reader.line_num)))
    if not rows:
        raise DataError(f"CSV {path} has a header but no reviews")
    return rows


def open_csv(path: Path) -> TextIO:
    """Open a CSV file, gunzipping a .gz, as UTF-8 text for the csv module (a byte-order mark, as Excel writes, is dropped)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def csv_read_errors(path: Path) -> Iterator[None]:
    """Turn the ways reading a CSV fails (not UTF-8, corrupt gzip, I/O) into one-line DataErrors."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise DataError(f"CSV {path} is not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start} of a block); re-save it as UTF-8") from e
    except (OSError, EOFError, csv.Error, zlib.error) as e:
        raise DataError(f"cannot read CSV {path}: {e}") from e


def check_columns(path: Path, columns: list[str] | None) -> None:
    """Raise a DataError unless a CSV header names both a text and a label column."""
    if not columns:
        raise DataError(f"CSV {path} is empty")
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        raise DataError(f"CSV {path} lacks column(s) {', '.join(missing)} (found: {', '.join(map(repr, columns))})")
    repeated = sorted({c for c in columns if columns.count(c) > 1 and c in ("text", "label")})
    if repeated:  # which one would be read is a guess; csv.DictReader would silently take the last
        raise DataError(f"CSV {path} names column(s) {', '.join(repeated)} more than once; keep one of each")


def parse_label(value: str | None, path: Path, row: int, line: int) -> int:
    """Map a label cell (0/1, neg/pos, negative/positive) to 0 or 1, or raise a DataError naming the row."""
    label = LABELS.get((value or "").strip().lower())
    if label is None:
        raise DataError(f"CSV {path} row {row} (line {line}): label {value!r} is not one of {', '.join(LABELS)}")
    return label


def load_aclimdb(path: Path, val_fraction: float, seed: int) -> Splits:
    """Load the Stanford layout (folder or tarball): train → train/validation, test → test."""
    files = iter_aclimdb_tar(path) if path.is_file() else iter_aclimdb_dir(path)
    try:
        # Sorted by split/label/file name: folder and tarball then give the same seeded split.
        rows = sorted(files)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"cannot read aclImdb archive {path}: {e}") from e
    parts: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for split, label, _, text in rows:
        parts[split].append((text, label))
    for split, rows in parts.items():
        if not rows:
            raise DataError(f"{path} has no reviews under {split}/pos or {split}/neg (is it an aclImdb folder?)")
    train = split_seeded(_split_from_pairs(parts["train"]), val_fraction, 0.0, seed)
    return Splits(train.train, train.validation, _split_from_pairs(parts["test"]))


def iter_aclimdb_dir(path: Path) -> Iterator[tuple[str, int, str, str]]:
    """Yield (split, label, file name, text) from an extracted aclImdb folder."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    for split in ("train", "test"):
        for label_name, label in (("neg", 0), ("pos", 1)):
            for file in (root / split / label_name).glob("*.txt"):
                yield split, label, file.name, file.read_text(encoding="utf-8", errors="replace")


def iter_aclimdb_tar(path: Path) -> Iterator[tuple[str, int, str, str]]:
    """Yield (split, label, file name, text) from ``aclImdb_v1.tar.gz`` without extracting it; unsup is skipped."""
    with tarfile.open(path, "r:*") as tar:
        for member in tar:  # streamed: the archive is read once, front to back
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or not parts[-1].endswith(".txt"):
                continue
            split, label_name = parts[-3], parts[-2]
            if split in ("train", "test") and label_name in ("neg", "pos"):
                data = tar.extractfile(member).read()
                yield split, int(label_name == "pos"), parts[-1], data.decode("utf-8", errors="replace")
        # tarfile stops quietly at a truncated header; reading the compressed stream to its end
        # makes gzip (or bz2, xz) report the truncation instead of yielding half a dataset.
        while tar.fileobj.read(1 << 20):
            pass


def _split_from_pairs(pairs: Iterable[tuple[str | bytes, int]]) -> Split:
    """Turn (text, label) pairs into a Split, decoding bytes as UTF-8."""
    texts, labels = [], []
    for text, label in pairs:
        texts.append(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text)
        labels.append(int(label))
    return Split(texts, np.asarray(labels, dtype=np.int32))


def split_seeded(data: Split, val_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Shuffle ``data`` with ``seed`` and cut off validation and test shares."""
    n = len(data)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n_val < 1 or (test_fraction > 0 and n_test < 1) or n - n_val - n_test < 2:
        raise DataError(
            f"dataset too small to split: {n} reviews at val_fraction={val_fraction}, "
            f"test_fraction={test_fraction} (need at least 2 for training and 1 per held-out split)"
        )
    order = np.random.default_rng(seed).permutation(n)

    def take(idx: np.ndarray) -> Split:
        return Split([data.texts[i] for i in idx], data.labels[idx])

    return Splits(
        train=take(order[n_val + n_test :]), validation=take(order[n_test : n_test + n_val]), test=take(order[:n_test])
    )


def check_splits(splits: Splits) -> None:
    """Raise a DataError if a split is empty or training data has only one class."""
    for name, split in splits.items():
        if not len(split):
            raise DataError(f"the {name} split has no reviews left; the dataset is too small to split")
    if len(np.unique(splits.train.labels)) < 2:
        raise DataError("the training split holds only one class; both positive and negative reviews are needed")


# ---------------------------------------------------------------------------
# tf.data

# The preprocessing layer's output: token ids [b, t] (0-padded on the right), or with a wide
# branch a dict of those (TOKEN_IDS) and the review's word 1-2-gram ids (NGRAM_IDS).
Features = tf.Tensor | dict[str, tf.Tensor]
Encoder = Callable[[tf.Tensor], Features]
TOKEN_IDS, NGRAM_IDS = "token_ids", "ngram_ids"


def trim_padding(ids: tf.Tensor) -> tf.Tensor:
    """Drop the right padding of one row of ids (ids are never 0 inside a review): int [t] → int32 [<=t]."""
    return tf.cast(ids[: tf.math.count_nonzero(ids, dtype=tf.int32)], tf.int32)


def token_count(features: Features) -> tf.Tensor:
    """Return the number of recurrent steps of one encoded review (its token ids' length)."""
    return tf.shape(features[TOKEN_IDS] if isinstance(features, dict) else features)[0]


Source = Split | Stream  # reviews in memory, or a streamed CSV split


def records(source: Source) -> tf.data.Dataset:
    """Yield (text tf.string [], label float32 []) of a split."""
    if isinstance(source, Stream):
        return source.records()
    # An explicit dtype and shape: an empty list (a worker's empty shard) would otherwise become float32.
    texts = tf.constant(source.texts, tf.string, shape=[len(source)])
    return tf.data.Dataset.from_tensor_slices((texts, source.labels.astype(np.float32)))


def encode(source: Source | tf.data.Dataset, preprocess: Encoder) -> tf.data.Dataset:
    """Yield (features, label float32 []) per review, preprocessed in parallel batches, padding removed.

    Streamed reviews left with no token by standardization are dropped here (in memory they
    were dropped on loading): a fully masked row breaks cuDNN.
    """
    ds = source if isinstance(source, tf.data.Dataset) else records(source)
    ds = ds.batch(_ENCODE_CHUNK).map(lambda t, y: (preprocess(t), y), num_parallel_calls=tf.data.AUTOTUNE)
    # Rows come back padded to the longest of their chunk.
    ds = ds.unbatch().map(lambda x, y: (tf.nest.map_structure(trim_padding, x), y))
    return ds.filter(lambda x, y: token_count(x) > 0) if isinstance(source, Stream) else ds


def shard(source: Source, count: int, index: int) -> Source:
    """Return worker ``index`` of ``count``'s share of a split (every count-th review)."""
    if count == 1:
        return source
    if isinstance(source, Stream):
        return source.sharded(count, index)
    return Split(source.texts[index::count], source.labels[index::count])


def epoch_variable() -> tf.Variable:
    """Return the int64 variable that tells a training pipeline which epoch it is shuffling for (0 to start)."""
    return tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")


def make_train_dataset(split: Source, preprocess: Encoder, config: Config, epoch: tf.Variable,
                       fixed_shapes: bool = False) -> tf.data.Dataset:
    """Shuffled, length-bucketed, right-padded batches: features [b, t] int32, labels [b] float32.

    Each pass is shuffled with a seed made of ``config.seed`` and the value of ``epoch`` when
    the pass begins (training.ShuffleEpoch sets it), so epoch k sees the same order whether
    or not the run was interrupted and resumed before it. In memory the encoded reviews are
    cached and shuffled whole; a stream is shuffled within a window of STREAM_SHUFFLE_BUFFER
    reviews and encoded anew each epoch (flat memory). ``fixed_shapes`` pads each batch to its
    bucket's width instead of its longest review, so an XLA-compiled step sees a bounded set of shapes.
    """
    streamed = isinstance(split, Stream)
    cached = None if streamed else encode(split, preprocess).cache()

    def one_epoch(_: tf.Tensor) -> tf.data.Dataset:
        # A tensor seed next to a global seed of 0 trips a Python bool() inside TF's get_seed; this
        # function's graph needs no global seed (config.seed is folded in), so it gets none.
        tf.compat.v1.get_default_graph().seed = None
        seed = tf.constant(config.seed, tf.int64) * 1_000_003 + epoch.read_value()  # read as each pass begins
        if streamed:
            shuffled = records(split).shuffle(STREAM_SHUFFLE_BUFFER, seed=seed)
            return encode(shuffled, preprocess).filter(lambda x, y: token_count(x) > 0)
        return cached.shuffle(len(split), seed=seed)

    ds = tf.data.Dataset.range(1).flat_map(one_epoch)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < config.max_len] + [config.max_len + 1]
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda x, y: token_count(x),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,  # pad to the longest review of the batch
    )
    return with_fixed_shapes(ds, config).prefetch(tf.data.AUTOTUNE) if fixed_shapes else ds.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(split: Source, preprocess: Encoder, config: Config, fixed_shapes: bool = False) -> tf.data.Dataset:
    """Batches in the split's order (so predictions align with labels), padded per batch (in memory: cached, of known length)."""
    if isinstance(split, Stream):
        ds = encode(split, preprocess).padded_batch(config.batch_size)
        return (with_fixed_shapes(ds, config) if fixed_shapes else ds).prefetch(tf.data.AUTOTUNE)
    ds = encode(split, preprocess).cache().padded_batch(config.batch_size)
    if fixed_shapes:
        ds = with_fixed_shapes(ds, config)
    # A known number of batches: Keras then never warns that the input "ran out of data".
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(split) // config.batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def with_fixed_shapes(ds: tf.data.Dataset, config: Config) -> tf.data.Dataset:
    """Pad every batch's id matrices on the right to a power-of-two width (token ids: capped at max_len)."""
    token_widths = tf.constant(sorted({w for w in XLA_WIDTHS if w < config.max_len} | {config.max_len}), tf.int32)
    ngram_widths = tf.constant(XLA_WIDTHS, tf.int32)

    def pad(features: Features, y: tf.Tensor) -> tuple[Features, tf.Tensor]:
        if not isinstance(features, dict):
            return pad_width(features, token_widths), y
        return {k: pad_width(v, token_widths if k == TOKEN_IDS else ngram_widths) for k, v in features.items()}, y

    return ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE)


def pad_width(ids: tf.Tensor, widths: tf.Tensor) -> tf.Tensor:
    """Pad int [b, t] with zeros to [b, w], w the smallest of ``widths`` ≥ t (t itself beyond the largest)."""
    width = tf.shape(ids)[1]
    index = tf.minimum(tf.searchsorted(widths, tf.reshape(width, [1]))[0], tf.size(widths) - 1)
    target = tf.maximum(widths[index], width)
    return tf.pad(ids, [[0, 0], [0, target - width]])
