"""Shared fixtures: tiny generated IMDB-like data in every supported layout. Nothing is downloaded."""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the entry-point scripts (train.py, ...) are imported by tests
# Remembered file digests (sentiment.serving.model_files) go to a folder of this session, not the user's ~/.cache.
os.environ["SENTIMENT_CACHE_DIR"] = tempfile.mkdtemp(prefix="sentiment-test-cache-")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sentiment import cli  # noqa: E402,F401  (first: sets TensorFlow's log level before it loads)
from sentiment.config import make_config  # noqa: E402

POSITIVE = ["great", "wonderful", "excellent", "loved", "superb", "brilliant"]
NEGATIVE = ["awful", "terrible", "boring", "worst", "dull", "waste"]
FILLER = ["the", "movie", "film", "plot", "actor", "was", "and", "a", "scene", "story", "it", "this"]


def make_reviews(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Return ``n`` (review, label) pairs whose sentiment words decide the label; some carry <br /> tags."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(i % 2)
        words = list(rng.choice(FILLER, size=int(rng.integers(5, 40))))
        for _ in range(2):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        text = " ".join(words).capitalize() + "."
        if i % 5 == 0:
            text = text.replace(" the ", " the<br /><br />", 1)
        rows.append((text, label))
    return rows


class CrashAtEpoch(keras.callbacks.Callback):
    """Simulates a kill: raises when ``epoch`` begins, after earlier epochs were backed up."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated kill")


def wait_for_epochs(run_path: Path, epochs: int, procs: list, seconds: float) -> None:
    """Wait until the run's history.csv holds ``epochs`` rows, a process ends, or ``seconds`` pass."""
    import time

    from sentiment.rundir import RunDir
    from sentiment.training import fitting

    deadline = time.time() + seconds
    while len(fitting.read_history(RunDir(run_path))) < epochs and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)


def write_csv(path: Path, rows: list[tuple[str, object]], header: tuple[str, str] = ("text", "label")) -> Path:
    """Write rows as a CSV (gzipped when the name ends in .gz)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_aclimdb(root: Path, n_train: int = 40, n_test: int = 20) -> Path:
    """Write a miniature Stanford aclImdb tree (with an unsup folder that must be ignored)."""
    base = root / "aclImdb"
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        for i, (text, label) in enumerate(make_reviews(n, seed)):
            folder = base / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{7 if label else 2}.txt").write_text(text, encoding="utf-8")
    unsup = base / "train" / "unsup"
    unsup.mkdir(parents=True, exist_ok=True)
    (unsup / "0_0.txt").write_text("unlabelled review", encoding="utf-8")
    return base


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    """A gzipped CSV of 200 generated reviews with neg/pos labels."""
    rows = [(text, "pos" if label else "neg") for text, label in make_reviews(200)]
    return write_csv(tmp_path / "reviews.csv.gz", rows)


@pytest.fixture
def aclimdb_dir(tmp_path: Path) -> Path:
    """An extracted miniature aclImdb folder."""
    return write_aclimdb(tmp_path)


@pytest.fixture
def aclimdb_tar(tmp_path: Path) -> Path:
    """A miniature ``aclImdb_v1.tar.gz``."""
    base = write_aclimdb(tmp_path / "src")
    tar_path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(base, arcname="aclImdb")
    return tar_path


@pytest.fixture
def tiny_config(csv_path: Path):
    """Return a factory of configs for tiny, seconds-long training runs on ``csv_path``."""

    def make(model: str = "lstm", **overrides):
        settings = dict(
            data=str(csv_path), vocab_size=64, max_len=48, embedding_dim=8, units=8,
            batch_size=16, epochs=2, patience=5, lr_decay=1.0, val_fraction=0.2, test_fraction=0.2,
            pretrain_dir=str(csv_path.parent / "pretrained"),  # word vectors (wide_lstm's preset) stay out of the checkout
        )
        settings.update(overrides)
        return make_config(model, **settings)

    return make


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """One tiny trained LSTM run, shared by the export and prediction tests."""
    from sentiment.training import experiment, fitting

    fitting.seed_everything(0)
    tmp = tmp_path_factory.mktemp("shared_run")
    data = write_csv(tmp / "r.csv", [(t, "pos" if y else "neg") for t, y in make_reviews(120)])
    config = make_config(
        "lstm", data=str(data), vocab_size=64, max_len=32, embedding_dim=8, units=8, epochs=3,
        learning_rate=0.02, batch_size=16, val_fraction=0.2, test_fraction=0.2,
    )
    return experiment.run(config, tmp / "run")


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory) -> list[Path]:
    """A tiny SimpleRNN run and a tiny LSTM run on one split, shared (read-only) by the evaluation and comparison tests."""
    from sentiment.training import experiment, fitting

    tmp = tmp_path_factory.mktemp("two_runs")
    data = write_csv(tmp / "r.csv", [(t, y) for t, y in make_reviews(150)])
    common = dict(data=str(data), vocab_size=64, max_len=32, embedding_dim=8, units=8, epochs=2, batch_size=16,
                  val_fraction=0.2, test_fraction=0.2, learning_rate=0.02)
    fitting.seed_everything(0)
    return [experiment.run(make_config(name, **common), tmp / name) for name in ("simple_rnn", "lstm")]


@pytest.fixture(scope="session")
def saved_model(run_dir, tmp_path_factory) -> Path:
    """The shared run exported as ``<root>/lstm/1``; returns the root."""
    from sentiment.export import savedmodel

    root = tmp_path_factory.mktemp("saved_models")
    savedmodel.export_run(run_dir, root)
    return root


def run_entry(script: str, argv: list[str], capsys, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run an entry point's main(argv) in-process as the shell would; return (exit code, stdout, stderr)."""
    import importlib

    module = importlib.import_module(f"sentiment.commands.{script.removesuffix('.py')}")
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = cli.run_main(module.main, argv)
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def seeded():
    """Seed every test as train.py seeds every run (the library itself never seeds)."""
    from sentiment.training import fitting

    fitting.seed_everything(42)
