"""Evaluation figures on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.evaluation import metrics

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


def test_accuracy_interval_covers_the_accuracy_and_narrows_with_more_reviews():
    rng = np.random.default_rng(0)
    small_labels = rng.integers(0, 2, 200)
    small_probs = np.where(rng.random(200) < 0.85, small_labels, 1 - small_labels).astype(np.float32)
    big_labels = np.tile(small_labels, 10)
    big_probs = np.tile(small_probs, 10)
    low, high = metrics.accuracy_interval(small_labels, small_probs)
    acc = float(((small_probs >= 0.5) == small_labels).mean())
    assert low < acc < high
    # A binomial proportion's standard error: the 95% interval is about ±1.96 of it.
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(acc * (1 - acc) / 200), rel=0.2)
    big_low, big_high = metrics.accuracy_interval(big_labels, big_probs)
    assert big_high - big_low < (high - low) / 2  # 10x the reviews: ~1/sqrt(10) the width


def test_mcnemar_counts_disagreements_and_gives_the_exact_binomial_p():
    labels = np.array([1] * 30)
    a = np.ones(30)  # right everywhere
    b = np.array([1.0] * 20 + [0.0] * 10)  # wrong on 10 reviews where A is right
    test = metrics.mcnemar_test(labels, a, b)
    assert (test["a_only"], test["b_only"]) == (10, 0)
    assert test["p_value"] == pytest.approx(2 * 0.5**10)  # two-sided: 10 of 10 disagreements
    assert metrics.mcnemar_test(labels, a, a)["p_value"] == 1.0  # no disagreement, no evidence
    balanced = metrics.mcnemar_test(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), np.array([0, 1, 0, 0]))
    assert balanced["p_value"] == pytest.approx(1.0)


def test_reports_keep_per_review_predictions_for_paired_tests():
    m = metrics.evaluate_predictions(["r"] * 8, LABELS, PROBS, np.full(8, 5), max_len=10)
    assert m["predictions"]["labels"] == LABELS.tolist()
    np.testing.assert_allclose(m["predictions"]["probabilities"], PROBS, atol=1e-6)
    low, high = m["accuracy_ci95"]
    assert 0 <= low <= m["accuracy"] <= high <= 1


def test_paired_difference_finds_a_real_gap_and_not_a_tiny_one():
    gen = np.random.default_rng(0)
    a = gen.random(2000) < 0.80
    b = a | (gen.random(2000) < 0.5)  # B right wherever A is, and on about half the rest
    clear = metrics.paired_difference(a, b)
    assert clear["difference"] == pytest.approx(b.mean() - a.mean()) and clear["ci95"][0] > 0.05
    c = a.copy()  # C is wrong on 40 reviews A gets right and right on 50 it gets wrong: +0.005
    c[np.flatnonzero(a)[:40]], c[np.flatnonzero(~a)[:50]] = False, True
    tiny = metrics.paired_difference(a, c)
    assert tiny["difference"] == pytest.approx(0.005) and tiny["ci95"][0] < 0 < tiny["ci95"][1]  # not a finding
