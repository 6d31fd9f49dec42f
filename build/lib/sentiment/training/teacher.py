"""Distillation: an n-gram anchor labels the unlabelled reviews, and the classifier learns from them too.

With ``--teacher nbsvm_bi`` an anchor (:data:`sentiment.evaluation.anchors.ANCHORS`) is fitted on the
training reviews, and its probabilities become soft labels for the unlabelled reviews (the
source's own and ``--unlabelled``'s, minus any validation or test review: the text word
vectors and pretraining read). The classifier then trains on both, gold labels for the training
reviews and the teacher's for the rest (Hinton et al. 2015's soft targets; the self-training of
Xie et al. 2020 with a cheap teacher). It stays what it was at inference: the anchor writes labels,
it is not part of the model. Validation and test reviews keep their gold labels and are never labelled.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sentiment.config import Config
from sentiment.data import preprocessing, unlabelled
from sentiment.data.sources import Split
from sentiment.errors import DataError
from sentiment.evaluation import anchors, metrics

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
    anchor = anchors.ANCHORS[config.teacher](config.seed).fit(preprocessing.standardize_texts(train.texts), train.labels)

    def score(texts: list[str]) -> np.ndarray:
        return anchor.predict_proba(preprocessing.standardize_texts(texts))[:, 1].astype(np.float32)

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
