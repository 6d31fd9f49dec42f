"""Scoring a model on reviews and writing its report: one ``build_report`` for training runs, the baseline and re-evaluation.

Used at the end of every training run and on demand (``evaluate.py``) for any run
directory or exported model on any supported dataset.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment.config import Config, parse_threshold
from sentiment.data import preprocessing
from sentiment.data.sources import Split, Splits
from sentiment.errors import ConfigError, DataError
from sentiment.evaluation import calibration, explanation, metrics, report
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)

Scorer = Callable[[list[str]], np.ndarray]  # raw reviews → P(positive) float32 [n]
EXPLAINED_REVIEWS = 50  # reviews whose occlusion reasons are summed into the report's strongest phrases (~2n texts scored each)
EXPLAINED_REASONS = 3  # reasons each way per explained review
STRONGEST_PHRASES = 10  # phrases each way in the report
SPLITS = ("test", "validation", "train", "all")


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over (inputs, labels) batches: return labels int32 [n] and P(positive) float32 [n]."""
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in ds]).astype(np.int32)
    with warnings.catch_warnings():  # a streamed split has no known length: Keras finds its end by running out
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        probs = model.predict(ds.map(lambda inputs, y: inputs), verbose=0)
    return labels, np.asarray(probs, dtype=np.float32).reshape(-1)


def model_scorer(model: keras.Model, temperature: float = 1.0) -> Scorer:
    """An end-to-end model (raw strings in) as a Scorer, calibrated by ``temperature`` as its export will be."""

    def score(texts: list[str]) -> np.ndarray:
        # predict, not a call: one traced graph is ~6x faster than eager calls on thousands of texts.
        return calibration.apply_temperature(model.predict(tf.constant(texts), batch_size=256, verbose=0).reshape(-1), temperature)

    return score


def score_in_length_order(score_batch: Scorer, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Score raw texts in batches of similar length (less padding), returned in the original order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = np.zeros(len(texts), np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        probs[idx] = np.asarray(score_batch([texts[i] for i in idx]), np.float32).reshape(-1)
    return probs


def build_report(reviews: Split, probs: np.ndarray, max_len: int, threshold: float = 0.5, scorer: Scorer | None = None,
                 **details: object) -> dict:
    """Return every evaluation figure of one split's predictions at ``threshold``, plus ``details`` (model, data, training...).

    With the model's ``scorer``, also what drives it: its strongest phrases and why it made its most confident mistakes.
    """
    lengths = preprocessing.token_lengths(reviews.texts)
    result = {**metrics.evaluate_predictions(reviews.texts, reviews.labels, probs, lengths, max_len, threshold), **details}
    if scorer is not None:
        result["explanations"] = explain_predictions(scorer, reviews, probs, threshold)
    return result


def explain_predictions(scorer: Scorer, reviews: Split, probs: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """Occlusion over a sample of reviews: the phrases that move the model most in total, and the reasons behind its worst mistakes."""
    started = time.perf_counter()
    sample = np.random.default_rng(seed).permutation(len(reviews))[:EXPLAINED_REVIEWS]
    worst = metrics.confident_mistake_indices(reviews.labels, probs, threshold=threshold)
    # The reviews' tokens as the model reads them, standardized in one call rather than one per review.
    tokens = [t.split() for t in preprocessing.standardize_texts([reviews.texts[i] for i in [*sample, *worst]])]
    why = explanation.explain_many(scorer, tokens, k=EXPLAINED_REASONS)
    totals: dict[tuple[str, bool], list[float]] = {}
    for reason in (r for w in why[: len(sample)] for r in w["positive"] + w["negative"]):
        totals.setdefault((reason.phrase, reason.weight > 0), []).append(reason.weight)
    strongest = {side: [{"phrase": phrase, "total_weight": round(sum(w), 3), "reviews": len(w)}
                        for (phrase, positive), w in sorted(totals.items(), key=lambda kv: -abs(sum(kv[1])))
                        if positive == (side == "positive")][:STRONGEST_PHRASES]
                 for side in ("positive", "negative")}
    mistakes = [{"label": "positive" if reviews.labels[i] else "negative", "probability": round(float(probs[i]), 4),
                 "why": {side: [[r.phrase, round(r.weight, 3)] for r in w[side]] for side in ("positive", "negative")}}
                for i, w in zip(worst, why[len(sample) :])]
    log.info("explained %d reviews and %d mistakes in %.1f s", len(sample), len(mistakes), time.perf_counter() - started)
    return {"reviews": len(sample), "strongest": strongest, "mistakes": mistakes}


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


def training_data(config: Config, data: str | None, name: str) -> str:
    """Return ``data``, or else the data ``config`` was trained on if it is here (DataError naming the fix if not)."""
    if not data and config.data != "imdb" and not Path(config.data).expanduser().exists():
        # Exports name their data by file name only (no path of the machine that made them).
        raise DataError(f"{name} was trained on {config.data}, which is not here: give its path with --data")
    return data or config.data


def reevaluate(scorer: Scorer, config: Config, name: str, out_dir: Path, data: str | None = None, split: str = "test",
               threshold: str | float = 0.5) -> Path:
    """Evaluate a trained model on ``data`` (default: its training data) with its training split settings; write a report.

    ``threshold``: a number, or a target (``f1``, ``precision=X``, ``recall=X``) met on the validation split.
    """
    # The split settings of training apply, so "test" is the same held-out part it never saw.
    data_config = dataclasses.replace(config, data=training_data(config, data, name), max_examples=0)
    splits = preprocessing.load_clean_splits(data_config)
    chosen = select_split(splits, split)
    value = pick_threshold(scorer, splits.validation, str(threshold))
    log.info("evaluating %s on %d %s reviews of %s at threshold %.4f", name, len(chosen), split, data_config.data, value)
    probs = score_in_length_order(scorer, chosen.texts)
    result = build_report(chosen, probs, config.max_len, value, scorer, model=config.model, evaluated=name, split=split, data=data_config.data,
                          threshold_target=str(threshold))
    return report.write_report(out_dir, f"{config.model} ({name}) on {data_config.data}, {split} split", result, chosen.labels, probs)


def pick_threshold(scorer: Scorer, validation: Split, spec: str) -> float:
    """Return the threshold ``spec`` names, choosing it on the validation reviews when it is a target."""
    if parse_threshold(spec)[0] == "fixed":
        return parse_threshold(spec)[1]
    return calibration.choose_threshold(validation.labels, score_in_length_order(scorer, validation.texts), spec)
