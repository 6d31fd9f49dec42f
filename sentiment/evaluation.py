"""Scoring a model on reviews and writing its report: one ``build_report`` for training runs, the baseline and re-evaluation.

Used at the end of every training run and on demand (``evaluate.py``) for any run
directory or exported model on any supported dataset.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import metrics, preprocessing, report
from sentiment.config import Config
from sentiment.errors import ConfigError
from sentiment.data.sources import Split, Splits
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)

Scorer = Callable[[list[str]], np.ndarray]  # raw reviews → P(positive) float32 [n]
SPLITS = ("test", "validation", "train", "all")


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over (inputs, labels) batches: return labels int32 [n] and P(positive) float32 [n]."""
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in ds]).astype(np.int32)
    with warnings.catch_warnings():  # a streamed split has no known length: Keras finds its end by running out
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        probs = model.predict(ds.map(lambda inputs, y: inputs), verbose=0)
    return labels, np.asarray(probs, dtype=np.float32).reshape(-1)


def score_in_length_order(score_batch: Scorer, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Score raw texts in batches of similar length (less padding), returned in the original order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = np.zeros(len(texts), np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        probs[idx] = np.asarray(score_batch([texts[i] for i in idx]), np.float32).reshape(-1)
    return probs


def build_report(reviews: Split, probs: np.ndarray, max_len: int, **details: object) -> dict:
    """Return every evaluation figure of one split's predictions, plus ``details`` (model, data, training...)."""
    lengths = preprocessing.token_lengths(reviews.texts)
    return {**metrics.evaluate_predictions(reviews.texts, reviews.labels, probs, lengths, max_len), **details}


def select_split(splits: Splits, split: str) -> Split:
    """Return one split, or all reviews of the source for ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split != "all":
        return getattr(splits, split)
    parts = [s for _, s in splits.items()]
    return Split(sum((p.texts for p in parts), []), np.concatenate([p.labels for p in parts]))


def default_out_dirs(specs: list[str], split: str, out: str | None = None) -> list[Path]:
    """Where each model's report goes: inside a finished run dir, else reports/; never two models in one folder."""
    names = [report_name(spec, split) for spec in specs]
    names = [n if names.count(n) == 1 else f"{n}-{i + 1}" for i, n in enumerate(names)]
    if out:
        return [Path(out)] if len(specs) == 1 else [Path(out) / n for n in names]
    return [Path(spec) / f"eval-{split}" if RunDir(Path(spec)).is_finished() else Path("reports") / n
            for spec, n in zip(specs, names)]


def report_name(spec: str, split: str) -> str:
    """Name a report folder after the model: ``lstm-1-test`` for a version dir ``saved_models/lstm/1``."""
    path = Path(spec)
    parts = [path.parent.name, path.name] if path.name.isdigit() and path.parent.name else [path.name]
    return "-".join(parts + [split])


def reevaluate(scorer: Scorer, config: Config, name: str, out_dir: Path, data: str | None = None, split: str = "test") -> Path:
    """Evaluate a trained model on ``data`` (default: its training data) with its training split settings; write a report."""
    # The split settings of training apply, so "test" is the same held-out part it never saw.
    data_config = dataclasses.replace(config, data=data or config.data, max_examples=0)
    chosen = select_split(preprocessing.load_clean_splits(data_config), split)
    log.info("evaluating %s on %d %s reviews of %s", name, len(chosen), split, data_config.data)
    probs = score_in_length_order(scorer, chosen.texts)
    result = build_report(chosen, probs, config.max_len, model=config.model, evaluated=name, split=split, data=data_config.data)
    return report.write_report(out_dir, f"{config.model} ({name}) on {data_config.data}, {split} split", result, chosen.labels, probs)
