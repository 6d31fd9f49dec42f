"""IMDB reviews from TFDS, a CSV file or the Stanford aclImdb layout, into tf.data.

Every source is read into the same in-memory :class:`Splits` (IMDB is small:
50k reviews, ~65 MB), cleaned the same way, then streamed through tf.data with
vectorization inside the pipeline.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import logging
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from sentiment.artifacts import write_text
from sentiment.config import TRUNCATIONS, Config
from sentiment.errors import DataError, first_line

log = logging.getLogger(__name__)

LABELS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}
TFDS_NAME = "imdb_reviews/plain_text"
# Per-bucket upper bounds (tokens); batches hold reviews of similar length so a
# 60-token review is not padded to 500.
BUCKET_BOUNDARIES = (32, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
_VECTORIZE_CHUNK = 512  # reviews vectorized per parallel map call


@keras.saving.register_keras_serializable(package="sentiment", name="standardize")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop HTML line breaks and punctuation, keep ! and ? as tokens (tf.string → tf.string)."""
    text = tf.strings.lower(text, encoding="utf-8")  # not ASCII-only: "CAFÉ" → "café"
    text = tf.strings.regex_replace(text, "[’‘`´]", "'")  # typographic apostrophes: "don’t" → "don't"
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    # "!" and "?" carry sentiment ("great!!" vs "great?"); every other mark is noise.
    text = tf.strings.regex_replace(text, r"([!?])", r" \1 ")
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{N}\s!?']", " ")  # Unicode letters and digits stay
    text = tf.strings.regex_replace(text, r"(^|\s)'+|'+(\s|$)", " ")  # quotes, not apostrophes
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


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


# ---------------------------------------------------------------------------
# Sources


def load_splits(config: Config) -> Splits:
    """Load the source named by ``config.data``, drop reviews empty after cleaning, cap train size."""
    source = config.data
    if source == "imdb":
        splits = load_tfds(config.val_fraction)
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
    splits = Splits(*(drop_empty(split, name) for name, split in splits.items()))
    if config.max_examples and len(splits.train) > config.max_examples:
        splits.train = Split(splits.train.texts[: config.max_examples], splits.train.labels[: config.max_examples])
    check_splits(splits)
    log.info("data %s: %s", source, splits.sizes())
    return splits


def load_tfds(val_fraction: float) -> Splits:
    """Load TFDS ``imdb_reviews``: a deterministic slice of train for validation, test for test."""
    import tensorflow_datasets as tfds  # imported here: only this source needs it

    try:
        parts = tfds.load(TFDS_NAME, split=tfds_split_names(val_fraction), as_supervised=True)
    except Exception as e:  # download, checksum and I/O failures all look different
        raise DataError(f"cannot load TFDS {TFDS_NAME} ({first_line(e)}); pass a CSV or aclImdb path with --data") from e
    return Splits(*(_split_from_pairs(tfds.as_numpy(part)) for part in parts))


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
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames
            if not columns:
                raise DataError(f"CSV {path} is empty")
            missing = [c for c in ("text", "label") if c not in columns]
            if missing:
                raise DataError(f"CSV {path} lacks column(s) {', '.join(missing)} (found: {', '.join(columns)})")
            for row in reader:
                rows.append((row["text"] or "", parse_label(row["label"], path, reader.line_num)))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as e:
        raise DataError(f"cannot read CSV {path}: {e}") from e
    if not rows:
        raise DataError(f"CSV {path} has a header but no reviews")
    return rows


def parse_label(value: str | None, path: Path, line: int) -> int:
    """Map a label cell (0/1, neg/pos) to 0 or 1, or raise a DataError naming the line."""
    label = LABELS.get((value or "").strip().lower())
    if label is None:
        raise DataError(f"CSV {path} line {line}: label {value!r} is not one of 0, 1, neg, pos")
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


def drop_empty(split: Split, name: str) -> Split:
    """Drop reviews with no text left after standardization; a fully masked row breaks cuDNN."""
    if not len(split):
        return split
    cleaned = standardize(tf.constant(split.texts)).numpy()
    keep = np.flatnonzero([len(t) > 0 for t in cleaned])
    if len(keep) < len(split):
        log.warning("%s: skipped %d review(s) empty after standardization", name, len(split) - len(keep))
    return Split([split.texts[i] for i in keep], split.labels[keep])


def check_splits(splits: Splits) -> None:
    """Raise a DataError if a split is empty or training data has only one class."""
    for name, split in splits.items():
        if not len(split):
            raise DataError(f"the {name} split has no reviews left; the dataset is too small to split")
    if len(np.unique(splits.train.labels)) < 2:
        raise DataError("the training split holds only one class; both positive and negative reviews are needed")


# ---------------------------------------------------------------------------
# Vectorization and tf.data


def make_vectorizer(config: Config, vocabulary: list[str] | None = None, ragged: bool = False) -> keras.layers.TextVectorization:
    """Return a TextVectorization with the project's standardization; index 0 is padding, 1 is OOV."""
    return keras.layers.TextVectorization(
        max_tokens=config.vocab_size,
        standardize=standardize,
        split="whitespace",
        output_mode="int",
        vocabulary=vocabulary,
        ragged=ragged,
        name="vectorizer",
    )


def save_vocabulary(vectorizer: keras.layers.TextVectorization, path: Path) -> None:
    """Write the vocabulary one token per line, without the implied padding and OOV entries."""
    write_text(path, "\n".join(vectorizer.get_vocabulary()[2:]))


def load_vocabulary(path: Path) -> list[str]:
    """Read a vocabulary written by :func:`save_vocabulary`; pass it as ``make_vectorizer(vocabulary=...)``."""
    text = path.read_text(encoding="utf-8")
    return text.split("\n") if text else []


def adapt_vectorizer(texts: list[str], config: Config) -> keras.layers.TextVectorization:
    """Build a ragged vectorizer whose vocabulary comes from ``texts`` (training reviews only)."""
    vectorizer = make_vectorizer(config, ragged=True)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(_VECTORIZE_CHUNK))
    log.info("vocabulary: %d tokens from %d training reviews", vectorizer.vocabulary_size(), len(texts))
    return vectorizer


def encode(split: Split, vectorizer: keras.layers.TextVectorization, config: Config) -> tf.data.Dataset:
    """Yield (token ids int32 [<= max_len], label float32 []) per review, vectorized in parallel."""
    if config.truncate not in TRUNCATIONS:
        raise DataError(f"unknown truncate {config.truncate!r}; choose one of {', '.join(TRUNCATIONS)}")
    keep = slice(None, config.max_len) if config.truncate == "head" else slice(-config.max_len, None)
    ds = tf.data.Dataset.from_tensor_slices((split.texts, split.labels.astype(np.float32)))
    ds = ds.batch(_VECTORIZE_CHUNK).map(lambda t, y: (vectorizer(t), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.unbatch().map(lambda ids, y: (tf.cast(ids[keep], tf.int32), y))


def make_train_dataset(split: Split, vectorizer: keras.layers.TextVectorization, config: Config) -> tf.data.Dataset:
    """Shuffled (seeded), length-bucketed, right-padded batches: ids [b, t] int32, labels [b] float32."""
    ds = encode(split, vectorizer, config).cache()
    ds = ds.shuffle(len(split), seed=config.seed, reshuffle_each_iteration=True)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < config.max_len] + [config.max_len + 1]
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda ids, y: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,  # pad to the longest review of the batch
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(split: Split, vectorizer: keras.layers.TextVectorization, config: Config) -> tf.data.Dataset:
    """Batches in the split's order (so predictions align with labels), padded per batch."""
    ds = encode(split, vectorizer, config).cache()
    return ds.padded_batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def token_lengths(texts: list[str]) -> np.ndarray:
    """Return each review's token count before truncation (int64 [n]); the vectorizer's split exactly."""
    counts = [
        tf.strings.split(standardize(tf.constant(texts[i : i + 4096]))).row_lengths().numpy()
        for i in range(0, len(texts), 4096)
    ]
    return np.concatenate(counts) if counts else np.zeros(0, np.int64)
