"""Distillation: an n-gram anchor or a trained model labels the unlabelled reviews, and the classifier learns from them too.

With ``--teacher nbsvm_bi`` an anchor (:data:`sentiment.evaluation.anchors.ANCHORS`) is fitted on the
training reviews; with ``--teacher runs/NAME`` a finished run's model is the teacher (iterated teaching: a
stacked model taught by NBSVM-bi teaches the next student), refused if it trained or chose its settings on any
review this run holds out. The teacher's probabilities become soft labels for the unlabelled reviews (the
source's own and ``--unlabelled``'s, minus any validation or test review: the text word
vectors and pretraining read). The classifier then trains on both, gold labels for the training
reviews and the teacher's for the rest (Hinton et al. 2015's soft targets; the self-training of
Xie et al. 2020 with a cheap teacher). It stays what it was at inference: the anchor writes labels,
it is not part of the model. Validation and test reviews keep their gold labels and are never labelled.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from sentiment import artifacts
from sentiment.config import Config, is_run_path
from sentiment.data import preprocessing, unlabelled
from sentiment.data.sources import Split
from sentiment.errors import ConfigError, DataError
from sentiment.evaluation import anchors, calibration, metrics
from sentiment.rundir import RunDir

Scorer = Callable[[list[str]], np.ndarray]

log = logging.getLogger(__name__)


def with_teacher_labels(config: Config, train: Split, validation: Split, held_out: list[str]) -> tuple[Split, dict]:
    """Return the training reviews plus the unlabelled ones, labelled by ``config.teacher``, and the teacher's record.

    ``held_out`` are the validation and test reviews, which no unlabelled review may repeat.
    Labels of the result are float32: 0/1 for the training reviews, P(positive) for the rest.
    """
    texts = unlabelled.extra_unlabelled(config, held_out)
    extra = Split(texts, np.zeros(len(texts), np.float32)).where(preprocessing.has_words, "without words from the teacher's reviews")
    if not len(extra):
        raise DataError(f"--teacher {config.teacher} labels unlabelled reviews, and {config.data} has none: give some with --unlabelled")
    started = time.perf_counter()
    if is_run_path(config.teacher):
        validating = set(validation.texts)
        score = run_teacher(Path(config.teacher), set(train.texts), validating, [t for t in held_out if t not in validating])
    else:
        score = anchor_teacher(config, train)
    soft = score(extra.texts)
    record = {
        "anchor": config.teacher, "reviews": len(extra), "seconds": round(time.perf_counter() - started, 1),
        "validation_accuracy": round(metrics.classification_metrics(validation.labels, score(validation.texts))["accuracy"], 4),
        "positive_share": round(float((soft >= 0.5).mean()), 4),
        "mean_confidence": round(float(np.abs(soft - 0.5).mean() + 0.5), 4),  # how sure the soft labels are, 0.5 to 1
    }
    log.info("teacher %s labelled %d unlabelled review(s) in %.1f s (validation accuracy %.4f, %.1f%% positive)",
             config.teacher, len(extra), record["seconds"], record["validation_accuracy"], 100 * record["positive_share"])
    labels = np.concatenate([train.labels.astype(np.float32), soft])
    return Split(train.texts + extra.texts, labels), record


def anchor_teacher(config: Config, train: Split) -> Scorer:
    """Fit the anchor ``config.teacher`` on the training reviews; return its P(positive) of raw reviews."""
    anchor = anchors.ANCHORS[config.teacher](config.seed).fit(preprocessing.standardize_texts(train.texts), train.labels)

    def score(texts: list[str]) -> np.ndarray:
        return anchor.predict_proba(preprocessing.standardize_texts(texts))[:, 1].astype(np.float32)

    return score


def run_teacher(path: Path, training: set[str], validation: set[str], test: list[str]) -> Scorer:
    """Load a finished run's model as the teacher: its calibrated P(positive) of raw reviews.

    Its own split is read again and checked: it may not have trained on this run's validation or test reviews,
    nor chosen anything (early stopping, the stacking mix, calibration) on this run's test reviews. A held-out
    review whose text is also one of this run's training reviews (IMDB repeats some) teaches nothing new.
    """
    from sentiment import models
    from sentiment.evaluation import scoring

    run = RunDir(path)
    run.require_finished()
    teacher_config = run.load_config()
    try:
        splits = preprocessing.load_clean_splits(teacher_config)
    except (OSError, DataError) as e:
        raise ConfigError(f"--teacher {path}: cannot read the reviews it was trained on ({teacher_config.data}) to check it saw none of this "
                          f"run's held-out reviews: {e}") from e
    if not all(isinstance(getattr(s, "texts", None), list) for s in (splits.train, splits.validation)):
        raise ConfigError(f"--teacher {path} streamed its reviews: a teacher's reviews are checked in memory (train it with --stream off)")
    trained, chosen_on = set(splits.train.texts), set(splits.validation.texts)
    if teacher_config.refit:  # --refit trained its final model on the validation reviews too
        trained |= chosen_on
    # What this run does not already use the same way: IMDB repeats some reviews, and a held-out review that is
    # also one of this run's training reviews is no news from the teacher (``test`` holds no validation review).
    seen = sum(t in trained and t not in training for t in validation)
    seen += sum(t not in training and (t in trained or t in chosen_on) for t in test)
    if seen:
        raise ConfigError(f"--teacher {path} trained or chose its settings on {seen} of this run's validation and test reviews: "
                          "give a teacher trained on the same split (the same --data, --split-seed and fractions)")
    temperature = calibration.carried(artifacts.read_json(run.metrics), str(run.metrics))["temperature"]
    log.info("teacher: the model of %s (temperature %.3f)", path, temperature)
    return scoring.model_scorer(models.load_model(run.model), temperature)
