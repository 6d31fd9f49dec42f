"""Labelled IMDB reviews in memory: TFDS ``imdb_reviews``, a CSV file or the Stanford aclImdb layout.

Each is read into :class:`Splits` of :class:`Split` (train, validation, test). A split is one
kind of :class:`Source`, the interface the rest of the project uses; the other kind is a
streamed CSV split (:mod:`sentiment.data.streaming`), for corpora that do not fit in memory.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
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
from typing import Callable, Iterable, Iterator, Protocol, TextIO

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


class Source(Protocol):
    """What every split of reviews offers, held in memory (:class:`Split`) or streamed (``streaming.Stream``)."""

    streamed: bool  # True: re-read from files on every pass, of unknown size

    def records(self) -> tf.data.Dataset:
        """Yield (text tf.string [], label float32 []) in a fixed order."""

    def shard(self, count: int, index: int) -> "Source":
        """Return worker ``index`` of ``count``'s share (every count-th review)."""

    def bounded(self, limit: int) -> "Split":
        """Return the reviews in memory: all of a Split, the first ``limit`` of a stream (0: all)."""

    def where(self, keep: Keep, why: str) -> "Source":
        """Return the reviews for which ``keep`` (texts tf.string [b] → bool [b]) holds; the others are dropped ``why``."""


Keep = Callable[[tf.Tensor], tf.Tensor]  # texts tf.string [b] → keep bool [b]


@dataclasses.dataclass
class Split:
    """Reviews held in memory and their labels (0 negative, 1 positive): a :class:`Source` of known size."""

    texts: list[str]
    labels: np.ndarray  # int32 0/1, shape [n]; float32 in [0, 1] where a teacher wrote soft labels (sentiment.training.teacher)
    streamed = False  # not a field: the kind of source

    def __len__(self) -> int:
        return len(self.texts)

    def records(self) -> tf.data.Dataset:
        """Yield (text tf.string [], label float32 []) in order."""
        # An explicit dtype and shape: an empty list (a worker's empty shard) would otherwise become float32.
        texts = tf.constant(self.texts, tf.string, shape=[len(self)])
        return tf.data.Dataset.from_tensor_slices((texts, self.labels.astype(np.float32)))

    def shard(self, count: int, index: int) -> "Split":
        """Return worker ``index`` of ``count``'s share (every count-th review)."""
        return self if count == 1 else Split(self.texts[index::count], self.labels[index::count])

    def bounded(self, limit: int) -> "Split":
        """Return all of it: a split in memory is bounded already."""
        return self

    def where(self, keep: Keep, why: str) -> "Split":
        """Return the reviews ``keep`` accepts, logging how many were dropped ``why``."""
        mask = np.concatenate([keep(tf.constant(self.texts[i : i + 4096], tf.string)).numpy()
                               for i in range(0, len(self), 4096)]) if len(self) else np.zeros(0, bool)
        if not mask.all():
            log.warning("skipped %d review(s) %s", int((~mask).sum()), why)
        index = np.flatnonzero(mask)
        return Split([self.texts[i] for i in index], self.labels[index])


@dataclasses.dataclass
class Splits:
    """The train, validation and test reviews of one data source."""

    train: Source
    validation: Source
    test: Source

    def sizes(self) -> dict[str, int]:
        """Return the number of reviews per split (splits in memory only)."""
        return {name: len(split) for name, split in self.items()}

    def items(self) -> list[tuple[str, Source]]:
        """Return (name, split) pairs in train, validation, test order."""
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]

    def where(self, keep: Keep, why: str) -> "Splits":
        """Apply :meth:`Source.where` to every split."""
        return Splits(*(split.where(keep, f"{why} ({name})") for name, split in self.items()))


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
            splits = load_aclimdb(path, config.val_fraction, config.data_seed())
        elif path.name.endswith((".csv", ".csv.gz")):
            splits = load_csv(path, config.val_fraction, config.test_fraction, config.data_seed())
        else:
            raise DataError(f"unsupported data file {source}: expected .csv, .csv.gz, an aclImdb folder or .tar.gz")
    if config.max_examples and len(splits.train) > config.max_examples:
        splits.train = Split(splits.train.texts[: config.max_examples], splits.train.labels[: config.max_examples])
    log.info("data %s: %s", source, ", ".join(f"{n:,} {name}" for name, n in splits.sizes().items()))
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
    """Raise a DataError if a split in memory is empty or its training reviews have only one class (streams are checked as read)."""
    if splits.train.streamed:
        return
    for name, split in splits.items():
        if not len(split):
            raise DataError(f"the {name} split has no reviews left; the dataset is too small to split")
    if len(np.unique(splits.train.labels)) < 2:
        raise DataError("the training split holds only one class; both positive and negative reviews are needed")
