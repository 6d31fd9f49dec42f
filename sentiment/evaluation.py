"""How good is a model: scikit-learn metrics on a split's predictions."""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

log = logging.getLogger(__name__)


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over (inputs, labels) batches: return labels int32 [n] and P(positive) float32 [n]."""
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in ds]).astype(np.int32)
    probs = model.predict(ds.map(lambda inputs, y: inputs), verbose=0)
    return labels, np.asarray(probs, dtype=np.float32).reshape(-1)


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Return accuracy, loss, precision, recall, F1 and ROC-AUC of probabilities against 0/1 labels."""
    predicted = (probs >= threshold).astype(np.int32)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(skm.log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probs)) if both_classes else None,
        "examples": int(len(labels)),
        "positives": int(labels.sum()),
    }
