"""The strongest cheap baseline: TF-IDF word 1-2 grams + logistic regression (scikit-learn)."""

from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from sentiment import evaluation, input_pipeline
from sentiment.config import Config

log = logging.getLogger(__name__)


def clean_texts(texts: list[str]) -> list[str]:
    """Standardize reviews exactly as the neural models see them."""
    return [t.decode("utf-8") for t in input_pipeline.standardize(tf.constant(texts)).numpy()]


def make_baseline(seed: int) -> Pipeline:
    """Return the TF-IDF (1-2 grams, sublinear tf) + logistic regression (C=8) pipeline."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+"),
        LogisticRegression(C=8.0, max_iter=2000, random_state=seed),
    )


def run_baseline(config: Config) -> dict:
    """Fit the baseline on the config's training split; return its test report (same split as the runs)."""
    splits = input_pipeline.load_splits(config)
    started = time.perf_counter()
    pipeline = make_baseline(config.seed).fit(clean_texts(splits.train.texts), splits.train.labels)
    seconds = time.perf_counter() - started
    probs = pipeline.predict_proba(clean_texts(splits.test.texts))[:, 1].astype(np.float32)
    lengths = input_pipeline.token_lengths(splits.test.texts)
    report = evaluation.evaluate_predictions(splits.test.texts, splits.test.labels, probs, lengths, config.max_len)
    val_probs = pipeline.predict_proba(clean_texts(splits.validation.texts))[:, 1]
    report["validation"] = evaluation.classification_metrics(splits.validation.labels, val_probs)
    report["training"] = {"wall_seconds": round(seconds, 2), "reviews_per_second": round(len(splits.train) / seconds, 1)}
    report["parameters"] = int(pipeline[-1].coef_.size + pipeline[-1].intercept_.size)
    report["model"] = "tfidf_logreg"
    log.info("baseline: test accuracy %.4f in %.1f s", report["accuracy"], seconds)
    return report
