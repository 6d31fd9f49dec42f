"""An anchor's run: fitted on the runs' own training split, reported on the same test reviews (sentiment.evaluation.anchors)."""

from __future__ import annotations

import logging
import time

import numpy as np

from sentiment.config import Config
from sentiment.data import preprocessing
from sentiment.errors import ConfigError
from sentiment.evaluation import metrics, scoring
from sentiment.evaluation.anchors import ANCHORS, count_parameters

log = logging.getLogger(__name__)

REFIT_SUFFIX = "_refit"  # an anchor trained on train + validation, paired with --refit models
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
    return scoring.build_report(
        splits.test, score(splits.test.texts), config.max_len,
        model=anchor_name(anchor, refit),
        # An anchor that trained on the validation reviews has no validation figures to give.
        validation=None if refit else metrics.classification_metrics(splits.validation.labels, score(splits.validation.texts)),
        training={"wall_seconds": round(seconds, 2), "reviews_per_second": round(len(texts) / seconds, 1)},
        parameters=count_parameters(pipeline),
    )
