"""How good are a model's predictions: scikit-learn metrics, length buckets, calibration, mistakes.

Pure functions of labels and probabilities (numpy in, plain dicts out), so the
training run, the baseline and re-evaluation all report the same figures.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as skm

# Upper bounds (tokens, inclusive) of the length buckets; the last bucket is open.
LENGTH_BUCKETS = (100, 200, 400)
CALIBRATION_BINS = 10
BOOTSTRAP_RESAMPLES = 2000


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Return threshold and probability metrics of P(positive) against 0/1 labels (all from scikit-learn)."""
    predicted = (probs >= threshold).astype(np.int32)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "accuracy_ci95": accuracy_interval(labels, probs, threshold),
        "loss": float(skm.log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probs)) if both_classes else None,
        "brier": float(skm.brier_score_loss(labels, probs, pos_label=1)),
        "ece": expected_calibration_error(labels, probs),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "classification_report": skm.classification_report(
            labels, predicted, labels=[0, 1], target_names=["negative", "positive"], output_dict=True, zero_division=0
        ),
        "examples": int(len(labels)),
        "positives": int(labels.sum()),
    }


def accuracy_interval(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5, level: float = 0.95, seed: int = 0) -> list[float]:
    """Return the percentile bootstrap interval [low, high] of accuracy over reviews resampled with replacement.

    The number right in a resample of n reviews is Binomial(n, accuracy), so it is drawn
    directly: exact, and O(resamples) memory however many reviews there are.
    """
    if not len(labels):
        return [float("nan"), float("nan")]
    accuracy = float(((probs >= threshold).astype(np.int32) == labels).mean())
    means = np.random.default_rng(seed).binomial(len(labels), accuracy, size=BOOTSTRAP_RESAMPLES) / len(labels)
    tail = (1 - level) / 2
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))]


def paired_difference(right_a: np.ndarray, right_b: np.ndarray, level: float = 0.95, seed: int = 0) -> dict:
    """Return B's accuracy minus A's on the same reviews and its percentile bootstrap interval (reviews resampled in pairs)."""
    if not len(right_a):
        return {"difference": None, "ci95": [float("nan"), float("nan")]}
    gain = right_b.astype(np.float64) - right_a
    resampled = gain[np.random.default_rng(seed).integers(0, len(gain), (BOOTSTRAP_RESAMPLES, len(gain)))].mean(axis=1)
    tail = (1 - level) / 2
    return {"difference": float(gain.mean()), "ci95": [float(np.quantile(resampled, tail)), float(np.quantile(resampled, 1 - tail))]}


def mcnemar_test(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, threshold: float = 0.5) -> dict:
    """McNemar's exact test of two models on the same reviews: is one right more often where they disagree?

    ``a_only``/``b_only`` count reviews only A/only B gets right; ``p_value`` is the two-sided
    exact binomial test of a_only against b_only (no normal approximation: few disagreements).
    """
    right_a = (probs_a >= threshold).astype(np.int32) == labels
    right_b = (probs_b >= threshold).astype(np.int32) == labels
    a_only, b_only = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p_value = stats.binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p_value)}


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Return ECE: the example-weighted mean |observed rate - P(positive)| gap over equal-width bins.

    scikit-learn has no ECE; this uses the same uniform bins as its calibration_curve.
    """
    which = np.minimum((probs * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            gap += in_bin.sum() * abs(labels[in_bin].mean() - probs[in_bin].mean())
    return float(gap / max(len(labels), 1))


def length_bucket_masks(lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Return each length bucket's name (``1-100`` ... ``>400``) and boolean mask over reviews of these token lengths."""
    edges = [0, *LENGTH_BUCKETS, np.inf]
    return {
        (f"{low + 1}-{int(high)}" if np.isfinite(high) else f">{low}"): (lengths > low) & (lengths <= high)
        for low, high in zip(edges[:-1], edges[1:])
    }


def length_buckets(labels: np.ndarray, probs: np.ndarray, lengths: np.ndarray, max_len: int, threshold: float = 0.5) -> dict:
    """Return accuracy per review-length bucket (tokens after standardization) and the share truncated."""
    predicted = (probs >= threshold).astype(np.int32)
    buckets = []
    for name, mask in length_bucket_masks(lengths).items():
        acc = float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
        buckets.append({"bucket": name, "count": int(mask.sum()), "accuracy": acc})
    return {"buckets": buckets, "truncated_share": float((lengths > max_len).mean()) if len(lengths) else 0.0, "max_len": max_len}


def confident_mistake_indices(labels: np.ndarray, probs: np.ndarray, k: int = 5, threshold: float = 0.5) -> np.ndarray:
    """Return the indices of the ``k`` wrong predictions made with the highest confidence, most confident first."""
    wrong = np.flatnonzero((probs >= threshold).astype(np.int32) != labels)
    return wrong[np.argsort(-np.abs(probs[wrong] - threshold), kind="stable")][:k]


def confident_mistakes(texts: list[str], labels: np.ndarray, probs: np.ndarray, k: int = 5, chars: int = 300, threshold: float = 0.5) -> list[dict]:
    """Return the ``k`` wrong predictions made with the highest confidence, texts cut to ``chars``."""
    worst = confident_mistake_indices(labels, probs, k, threshold)
    return [
        {
            "label": "positive" if labels[i] else "negative",
            "probability": round(float(probs[i]), 4),
            "text": texts[i] if len(texts[i]) <= chars else texts[i][:chars] + "...",
        }
        for i in worst
    ]


def evaluate_predictions(texts: list[str], labels: np.ndarray, probs: np.ndarray, lengths: np.ndarray, max_len: int,
                         threshold: float = 0.5) -> dict:
    """Return every evaluation figure for one split's predictions, labels taken at ``threshold``."""
    return {
        **classification_metrics(labels, probs, threshold),
        "threshold": threshold,
        "length": length_buckets(labels, probs, lengths, max_len, threshold),
        "confident_mistakes": confident_mistakes(texts, labels, probs, threshold=threshold),
        # Per review, in the split's order: what paired tests between models need.
        "predictions": {"labels": labels.astype(int).tolist(), "probabilities": probs.astype(float).tolist()},
    }
