"""The strongest cheap anchors every model is measured against (scikit-learn), trained on the runs' own split.

- ``tfidf_logreg``: TF-IDF word 1-2 grams (sublinear tf) + logistic regression.
- ``nbsvm_bi``: NBSVM-bi (Wang & Manning 2012) in its logistic-regression form: binary word
  1-2-gram features scaled by their naive-Bayes log-count ratios, then logistic regression.
  On IMDB it is the classic bar a neural model must clear (91.2% with 25k reviews).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
import scipy.sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from sentiment import evaluation, metrics, preprocessing
from sentiment.config import Config
from sentiment.errors import ConfigError

log = logging.getLogger(__name__)

REFIT_SUFFIX = "_refit"  # an anchor trained on train + validation, paired with --refit models


class NBLogCountRatio(TransformerMixin, BaseEstimator):
    """Scale binary features by r = log((p / |p|₁) / (q / |q|₁)), p and q their smoothed counts in positive and negative reviews."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, features: scipy.sparse.spmatrix, labels: np.ndarray) -> "NBLogCountRatio":
        """Learn each feature's log-count ratio from binary ``features`` [reviews, features] and 0/1 ``labels``."""
        labels = np.asarray(labels)
        positive = self.alpha + np.asarray(features[labels == 1].sum(axis=0)).ravel()
        negative = self.alpha + np.asarray(features[labels == 0].sum(axis=0)).ravel()
        self.ratio_ = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
        return self

    def transform(self, features: scipy.sparse.spmatrix) -> scipy.sparse.csr_matrix:
        """Return ``features`` with each column multiplied by its ratio."""
        return scipy.sparse.csr_matrix(features.multiply(self.ratio_))


def make_tfidf_logreg(seed: int) -> Pipeline:
    """Return the TF-IDF (1-2 grams, sublinear tf) + logistic regression (C=8) pipeline."""
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+"),
        LogisticRegression(C=8.0, max_iter=2000, random_state=seed),
    )


def make_nbsvm_bi(seed: int) -> Pipeline:
    """Return NBSVM-bi: binary 1-2-gram counts → NB log-count ratios → logistic regression (C=1).

    C was chosen on seed 42's validation reviews of the IMDB CSV (0.1, 0.3, 1, 4 all within 0.5 points).
    """
    return make_pipeline(
        CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=r"\S+"),
        NBLogCountRatio(alpha=1.0),
        LogisticRegression(C=1.0, solver="liblinear", dual=True, max_iter=2000, random_state=seed),
    )


# Every comparison pairs each model with each of these; the first is the README's long-standing baseline.
ANCHORS: dict[str, Callable[[int], Pipeline]] = {"tfidf_logreg": make_tfidf_logreg, "nbsvm_bi": make_nbsvm_bi}
BASELINE, BASELINE_REFIT = "tfidf_logreg", "tfidf_logreg" + REFIT_SUFFIX


def anchor_name(anchor: str, refit: bool) -> str:
    """Return the report name of ``anchor`` trained on train (or, with ``refit``, on train + validation)."""
    return anchor + REFIT_SUFFIX if refit else anchor


def run_baseline(config: Config, refit: bool = False, anchor: str = BASELINE) -> dict:
    """Fit ``anchor`` on the config's training split (+ validation if ``refit``); return its test report (same split as the runs).

    ``refit`` gives the anchor the reviews a ``--refit`` model trained on, so a paired
    test against it measures the model, not the extra 10% of data.
    """
    if anchor not in ANCHORS:
        raise ConfigError(f"unknown baseline {anchor!r}; choose one of {', '.join(ANCHORS)}")
    splits = preprocessing.load_clean_splits(config)
    texts, labels = splits.train.texts, splits.train.labels
    if refit:
        texts, labels = texts + splits.validation.texts, np.concatenate([labels, splits.validation.labels])
    started = time.perf_counter()
    # Reviews are standardized exactly as the neural models see them.
    pipeline = ANCHORS[anchor](config.seed).fit(preprocessing.standardize_texts(texts), labels)
    seconds = time.perf_counter() - started

    def score(texts: list[str]) -> np.ndarray:
        return pipeline.predict_proba(preprocessing.standardize_texts(texts))[:, 1].astype(np.float32)

    log.info("%s: fitted in %.1f s", anchor, seconds)
    return evaluation.build_report(
        splits.test, score(splits.test.texts), config.max_len,
        model=anchor_name(anchor, refit),
        # An anchor that trained on the validation reviews has no validation figures to give.
        validation=None if refit else metrics.classification_metrics(splits.validation.labels, score(splits.validation.texts)),
        training={"wall_seconds": round(seconds, 2), "reviews_per_second": round(len(texts) / seconds, 1)},
        parameters=int(pipeline[-1].coef_.size + pipeline[-1].intercept_.size),
    )
