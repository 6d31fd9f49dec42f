"""Calibrated probabilities and a chosen decision threshold, both fitted on validation reviews after training.

Temperature scaling (Guo et al., 2017): P = sigmoid(logit(p) / T), T fitted by minimising the
validation log-loss. One parameter, monotone and fixed at 0.5, so it changes no label at 0.5, no
ranking (ROC-AUC) and no paired test between models, only how sure the probabilities claim to be.
The threshold is then chosen on the calibrated validation probabilities (``Config.threshold``).
Exports apply both in every engine (``sentiment.export.savedmodel``, ``sentiment.serving.litert_engine``);
this module imports only NumPy at load time, so the TensorFlow-free engine can use it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from sentiment.config import parse_threshold
from sentiment.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

EPSILON = 1e-7  # probabilities are clipped to [EPSILON, 1 - EPSILON] before taking their logit
IDENTITY = {"method": "none", "temperature": 1.0, "threshold": 0.5, "target": "0.5"}


def carried(record: dict, source: str = "the model") -> dict:
    """The calibration a run's metrics.json or an export's metadata.json carries, checked; the identity for those made before calibration.

    The one place every engine reads a temperature and threshold from, so a bad one is refused by all of them alike.
    """
    found = record.get("calibration") if isinstance(record, dict) else None
    return check_calibration(found, source) if found else IDENTITY


def check_calibration(calibrated: object, source: str) -> dict:
    """Return ``calibrated`` if its temperature is finite and > 0 and its threshold a number in [0, 1]; a ModelError naming ``source``."""
    if not isinstance(calibrated, dict):
        raise ModelError(f"{source}: its calibration must be a JSON object, not {type(calibrated).__name__}")
    temperature, threshold = calibrated.get("temperature", 1.0), calibrated.get("threshold", 0.5)
    if not is_number(temperature) or not (math.isfinite(temperature) and temperature > 0):
        raise ModelError(f"{source}: calibration temperature {temperature!r} is invalid: it must be a finite number above 0")
    if not is_number(threshold) or not 0 <= threshold <= 1:
        raise ModelError(f"{source}: calibration threshold {threshold!r} is invalid: it must be a number in [0, 1]")
    return {**calibrated, "temperature": float(temperature), "threshold": float(threshold)}


def is_number(value: object) -> bool:
    """Return True for a JSON number (an int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def to_logits(probs: np.ndarray) -> np.ndarray:
    """Return log(p / (1 - p)) float64 [n], clipped so 0 and 1 stay finite."""
    p = np.clip(np.asarray(probs, np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Return sigmoid(logit(p) / temperature) float32 [n]: the calibrated P(positive)."""
    if temperature == 1.0:
        return np.asarray(probs, np.float32)
    return (1.0 / (1.0 + np.exp(-to_logits(probs) / temperature))).astype(np.float32)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """Return the T > 0 minimising the log-loss of sigmoid(logit(p) / T) on these labels."""
    from scipy import optimize

    logits, y = to_logits(probs), np.asarray(labels, np.float64)

    def loss(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - y * z))  # binary cross-entropy from logits, stably

    return float(np.exp(optimize.minimize_scalar(loss, bounds=(-4.0, 4.0), method="bounded").x))


def choose_threshold(labels: np.ndarray, probs: np.ndarray, spec: str) -> float:
    """Return the threshold ``spec`` names: a number as given, or the one meeting a target on these reviews.

    ``f1``: the best F1. ``precision=X``: the lowest threshold whose precision is at least X (the most
    recall at that precision). ``recall=X``: the highest threshold whose recall is at least X.
    """
    kind, value = parse_threshold(spec)
    if kind == "fixed":
        return value
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, probs)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if kind == "f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return float(thresholds[int(np.argmax(f1))])
    met = np.flatnonzero(precision >= value) if kind == "precision" else np.flatnonzero(recall >= value)
    if not len(met):
        raise ConfigError(f"no threshold reaches {kind} {value} on the {len(labels)} validation reviews; ask for less")
    return float(thresholds[met[0]] if kind == "precision" else thresholds[met[-1]])


def calibrate(labels: np.ndarray, probs: np.ndarray, spec: str, fit: bool = True) -> dict:
    """Fit the temperature (if ``fit``) and choose the threshold on validation predictions; return them with before/after figures."""
    temperature = fit_temperature(labels, probs) if fit else 1.0
    calibrated = apply_temperature(probs, temperature)
    threshold = choose_threshold(labels, calibrated, spec)
    log.info("calibration: temperature %.3f, threshold %.4f (%s)", temperature, threshold, spec)
    return {
        "method": "temperature" if fit else "none",
        "temperature": temperature,
        "threshold": threshold,
        "target": spec,
        "validation": before_after(labels, probs, calibrated, threshold),
    }


def before_after(labels: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, threshold: float) -> dict:
    """ECE and log-loss of raw and calibrated probabilities, and the figures at the chosen threshold."""
    from sentiment.evaluation import metrics  # scikit-learn: not loaded by predict.py, which only applies a calibration

    before, after = metrics.classification_metrics(labels, raw), metrics.classification_metrics(labels, calibrated, threshold)
    return {
        "ece_before": before["ece"], "ece_after": after["ece"],
        "loss_before": before["loss"], "loss_after": after["loss"],
        **{f"{k}_at_threshold": after[k] for k in ("accuracy", "precision", "recall", "f1")},
    }
