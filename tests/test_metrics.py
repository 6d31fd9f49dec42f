"""Evaluation figures on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment import metrics

LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
PROBS = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.6, 0.7, 0.4], dtype=np.float32)


def test_classification_metrics_known_answers():
    m = metrics.classification_metrics(LABELS, PROBS)
    # predicted: 1 1 0 0 0 1 1 0 → TP=3, FN=1, FP=1, TN=3
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4) and m["f1"] == pytest.approx(3 / 4)
    # 14 of the 16 positive/negative pairs are ranked correctly (0.3<0.6, 0.3<0.4 wrong).
    assert m["roc_auc"] == pytest.approx(14 / 16)
    assert m["brier"] == pytest.approx(np.mean((PROBS - LABELS) ** 2), rel=1e-6)
    assert m["loss"] == pytest.approx(-np.mean(LABELS * np.log(PROBS) + (1 - LABELS) * np.log(1 - PROBS)), rel=1e-5)
    assert m["classification_report"]["positive"]["support"] == 4


def test_expected_calibration_error():
    # Perfectly calibrated: in the 0.25 bin one of four is positive; in the 0.75 bin three of four.
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    probs = np.array([0.25] * 4 + [0.75] * 4)
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(0.0)
    # Always 0.9 confident but right half the time: gap 0.4.
    assert metrics.expected_calibration_error(np.array([1, 0]), np.array([0.9, 0.9])) == pytest.approx(0.4)


def test_length_buckets():
    lengths = np.array([50, 100, 150, 250, 300, 500, 600, 90])
    result = metrics.length_buckets(LABELS, PROBS, lengths, max_len=400)
    buckets = {b["bucket"]: b for b in result["buckets"]}
    assert list(buckets) == ["1-100", "101-200", "201-400", ">400"]
    assert buckets["1-100"]["count"] == 3 and buckets["1-100"]["accuracy"] == pytest.approx(1.0)  # idx 0,1,7
    assert buckets["201-400"]["accuracy"] == pytest.approx(1.0)  # idx 3,4
    assert buckets[">400"]["accuracy"] == pytest.approx(0.5)  # idx 5 wrong, 6 right
    assert buckets["101-200"]["accuracy"] == pytest.approx(0.0)  # idx 2 wrong
    assert result["truncated_share"] == pytest.approx(2 / 8)


def test_confident_mistakes_are_sorted_and_truncated():
    texts = [f"review {i} " + "x" * 400 for i in range(8)]
    mistakes = metrics.confident_mistakes(texts, LABELS, PROBS, k=5, chars=20)
    # idx 2 (positive, 0.3) is wronger than idx 5 (negative, 0.6)
    assert [m["probability"] for m in mistakes] == [pytest.approx(0.3), pytest.approx(0.6)]
    assert mistakes[0]["label"] == "positive" and mistakes[0]["text"].endswith("...") and len(mistakes[0]["text"]) == 23
