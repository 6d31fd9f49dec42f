"""Review text without labels, for language-model pretraining (:mod:`sentiment.training.pretraining`).

Pretraining reads all the text a source has that no classifier is evaluated on: its training
reviews, the source's own unlabelled reviews (TFDS ``imdb_reviews``'s ``unsupervised`` split,
aclImdb's ``train/unsup/``) and any files ``--unlabelled`` names. Validation and test reviews
never are: a file that repeats one of them has that review dropped.
"""

from __future__ import annotations

import csv
import glob
import logging
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from sentiment.config import Config
from sentiment.data import sources
from sentiment.data.fast_tokenizer import standardize  # the in-graph standardization, in Python (TensorFlow-free, tested equal)
from sentiment.errors import DataError, first_line

log = logging.getLogger(__name__)

TFDS_UNLABELLED_SPLIT = "unsupervised"
ACLIMDB_UNLABELLED = ("train", "unsup")  # the folder of aclImdb's 50,000 unlabelled reviews


def source_unlabelled(config: Config) -> list[str]:
    """Return the unlabelled reviews that come with ``config.data`` (none for a CSV)."""
    if config.data == "imdb":
        return tfds_unlabelled(config.tfds_data_dir)
    path = Path(config.data).expanduser()
    if path.is_dir():
        return aclimdb_dir_unlabelled(path)
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return aclimdb_tar_unlabelled(path)
    return []


def tfds_unlabelled(data_dir: str = "") -> list[str]:
    """Return TFDS ``imdb_reviews``'s ``unsupervised`` split (prepared already: labelled reviews are loaded first)."""
    try:
        import tensorflow_datasets as tfds

        part = tfds.load(sources.TFDS_NAME, split=TFDS_UNLABELLED_SPLIT, data_dir=data_dir or None)
        return [row["text"].decode("utf-8", errors="replace") for row in tfds.as_numpy(part)]
    except Exception as e:  # TFDS raises many kinds; a user needs one line
        raise DataError(f"cannot load TFDS {sources.TFDS_NAME} split {TFDS_UNLABELLED_SPLIT} ({first_line(e)})") from e


def aclimdb_dir_unlabelled(path: Path) -> list[str]:
    """Return the reviews of an extracted aclImdb folder's ``train/unsup/`` (sorted by file name)."""
    root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
    return read_review_folder(root.joinpath(*ACLIMDB_UNLABELLED)) if root.joinpath(*ACLIMDB_UNLABELLED).is_dir() else []


def aclimdb_tar_unlabelled(path: Path) -> list[str]:
    """Return the ``train/unsup/`` reviews of ``aclImdb_v1.tar.gz``, read without extracting it (sorted by file name)."""
    found = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 3 and tuple(parts[-3:-1]) == ACLIMDB_UNLABELLED and parts[-1].endswith(".txt"):
                    found.append((parts[-1], tar.extractfile(member).read().decode("utf-8", errors="replace")))
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"cannot read aclImdb archive {path}: {e}") from e
    return [text for _, text in sorted(found)]


def read_review_folder(folder: Path) -> list[str]:
    """Return every ``*.txt`` file of ``folder`` as one review, in file-name order."""
    return [file.read_text(encoding="utf-8", errors="replace") for file in sorted(folder.glob("*.txt"))]


def read_unlabelled(spec: str) -> list[str]:
    """Return the reviews of ``--unlabelled``: files, folders or a glob of them (DataError if it names nothing readable)."""
    paths = sorted(glob.glob(str(Path(spec).expanduser()))) if glob.has_magic(spec) else [str(Path(spec).expanduser())]
    if not paths or not all(Path(p).exists() for p in paths):
        raise DataError(f"--unlabelled {spec}: no such file or folder")
    texts: list[str] = []
    for path in map(Path, paths):
        texts += list(read_unlabelled_file(path))
    log.info("--unlabelled %s: %d review(s) from %d path(s)", spec, len(texts), len(paths))
    return texts


def read_unlabelled_file(path: Path) -> Iterator[str]:
    """Yield the reviews of one path: a folder of .txt files, a CSV's text column, or a text file's non-blank lines."""
    if path.is_dir():
        yield from read_review_folder(path)
        return
    name = path.name.lower()
    try:
        with sources.open_csv(path) as f:  # gunzipped when .gz, UTF-8, a byte-order mark dropped; also right for .txt
            if name.endswith((".csv", ".csv.gz")):
                csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
                reader = csv.DictReader(f)
                if "text" not in (reader.fieldnames or []):
                    raise DataError(f"--unlabelled {path}: a CSV needs a text column (found: {', '.join(map(repr, reader.fieldnames or []))})")
                yield from (row["text"] for row in reader if (row["text"] or "").strip())
            else:
                yield from (line.rstrip("\r\n") for line in f if line.strip())
    except UnicodeDecodeError as e:
        raise DataError(f"--unlabelled {path} is not UTF-8 text (byte offset {e.start} of a block); re-save it as UTF-8") from e
    except (OSError, EOFError, csv.Error, zlib.error) as e:
        raise DataError(f"cannot read --unlabelled {path}: {e}") from e


def drop_held_out(texts: list[str], held_out: list[str]) -> list[str]:
    """Return ``texts`` without any review that is also a validation or test review (their text must never be trained on).

    Reviews are compared as the model reads them (``standardize``: case, markup, punctuation and spacing aside),
    so a held-out review copied with a trailing space or in capitals is dropped too.
    """
    forbidden = {standardize(t) for t in held_out}
    kept = [t for t in texts if standardize(t) not in forbidden]
    if len(kept) < len(texts):
        log.warning("dropped %d unlabelled review(s) that are also validation or test reviews", len(texts) - len(kept))
    return kept


def extra_unlabelled(config: Config, held_out: list[str]) -> list[str]:
    """Return the source's unlabelled reviews and ``--unlabelled``'s, minus any that is also a ``held_out`` review."""
    extra = source_unlabelled(config) + (read_unlabelled(config.unlabelled) if config.unlabelled else [])
    return drop_held_out(extra, held_out)


def load_unlabelled(config: Config, train_texts: list[str], held_out: list[str]) -> list[str]:
    """Return the pretraining text: training reviews, the source's unlabelled reviews and ``--unlabelled``, minus ``held_out``."""
    extra = extra_unlabelled(config, held_out)
    log.info("pretraining text: %d training review(s) + %d unlabelled", len(train_texts), len(extra))
    return list(train_texts) + extra
