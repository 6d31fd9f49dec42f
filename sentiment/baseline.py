"""The strongest cheap baseline: TF-IDF word 1-2 grams + logistic regression (scikit-learn)."""

from __future__ import annotations

import logging
import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from sentiment import evaluation, metrics, preprocessing
from sentiment.config import Config

log = logging.getLogger(__name__)

BASELINE, BASELINE_REFIT = "tfidf_logreg", "tfidf_logreg_refit"  # trained on train / on train + validation


def make_baseline(seed: int) -> Pipeline:
    """Return the TF-IDF (1-2 grams, sublinear tf) + logistic regression (C=8) pipeline."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+"),
        LogisticRegression(C=8.0, max_iter=2000, random_state=seed),
    )


def run_baseline(config: Config, refit: bool = False) -> dict:
    """Fit the baseline on the config's training split (+ validation if ``refit``); return its test report (same split as the runs).

    ``refit`` gives the baseline the reviews a ``--refit`` model trained on, so a paired
    test against it measures the model, not the extra 10% of data.
    """
    splits = preprocessing.load_clean_splits(config)
    texts, labels = splits.train.texts, splits.train.labels
    if refit:
        texts, labels = texts + splits.validation.texts, np.concatenate([labels, splits.validation.labels])
    started = time.perf_counter()
    # Reviews are standardized exactly as the neural models see them.
    pipeline = make_baseline(config.seed).fit(preprocessing.standardize_texts(texts), labels)
    seconds = time.perf_counter() - started

    def score(texts: list[str]) -> np.ndarray:
        return pipeline.predict_proba(preprocessing.standardize_texts(texts))[:, 1].astype(np.float32)

    log.info("baseline: fitted in %.1f s", seconds)
    return evaluation.build_report(
        splits.test, score(splits.test.texts), config.max_len,
        model=BASELINE_REFIT if refit else BASELINE,
        # A baseline that trained on the validation reviews has no validation figures to give.
        validation=None if refit else metrics.classification_metrics(splits.validation.labels, score(splits.validation.texts)),
        training={"wall_seconds": round(seconds, 2), "reviews_per_second": round(len(texts) / seconds, 1)},
        parameters=int(pipeline[-1].coef_.size + pipeline[-1].intercept_.size),
    )
