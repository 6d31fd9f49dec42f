"""Stacked wide and deep: each branch learns as if alone, then their mix is fitted on the validation reviews.

Trained jointly on one loss, the n-gram branch fits the training reviews within an epoch and
leaves the recurrent branch little to learn (README: the ablation). With ``--branches stacked``
each branch gets its own loss on the same batches (two models in one graph, one data pipeline,
one resume state), and afterwards a logistic regression on the two branches' validation logits
(Wolpert 1992) chooses how much each says. The weights are folded into the branches' own output
layers, so the stacked model is a plain ``wide_lstm`` graph: its export, LiteRT twin and serving
code are unchanged.
"""

from __future__ import annotations

import logging
import warnings

import keras
import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from sentiment import models

log = logging.getLogger(__name__)

BRANCH_LOGITS = ("deep_logit", "wide_logit")  # the output layers of the recurrent and the n-gram branch (sentiment.models)


def branch_trainer(classifier: keras.Model) -> keras.Model:
    """Return a model sharing ``classifier``'s layers whose output is each branch's own P(positive): float32 [batch, 2].

    Fitted with :func:`branch_loss`, the two branches' losses are averaged, so neither
    branch's gradient depends on the other's logit.
    """
    logits = [classifier.get_layer(name).output for name in BRANCH_LOGITS]
    probabilities = keras.layers.Concatenate(name="branch_probabilities")(
        [keras.layers.Activation("sigmoid", dtype="float32", name=f"{name}_probability")(x) for name, x in zip(BRANCH_LOGITS, logits)])
    return keras.Model(classifier.inputs, probabilities, name=f"{classifier.name}_branches")


@keras.saving.register_keras_serializable(package="sentiment")
def branch_loss(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Mean binary cross-entropy of each branch's P(positive) float32 [batch, 2] against labels [batch] or [batch, 1]."""
    labels = keras.ops.cast(keras.ops.reshape(labels, (-1, 1)), probabilities.dtype)
    return keras.ops.mean(keras.losses.binary_crossentropy(keras.ops.broadcast_to(labels, keras.ops.shape(probabilities))[..., None],
                                                           probabilities[..., None]), axis=-1)


@keras.saving.register_keras_serializable(package="sentiment")
def branch_accuracy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Share of the two branches' labels that are right, per review: float32 [batch]; a soft label (a teacher's) counts as the side it leans to."""
    return keras.ops.mean(models.label_accuracy(keras.ops.reshape(labels, (-1, 1)), probabilities), axis=-1)  # the classifier's rule, per branch


def branch_logits(classifier: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return labels int32 [n] and each branch's logit float32 [n, 2] (deep, wide) over (inputs, labels) batches."""
    logits = keras.Model(classifier.inputs, [classifier.get_layer(name).output for name in BRANCH_LOGITS])
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in ds]).astype(np.int32)
    with warnings.catch_warnings():  # a streamed split has no known length: Keras finds its end by running out
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        deep, wide = logits.predict(ds.map(lambda inputs, y: inputs), verbose=0)
    return labels, np.concatenate([np.reshape(deep, (-1, 1)), np.reshape(wide, (-1, 1))], axis=1).astype(np.float32)


def fit_mix(labels: np.ndarray, logits: np.ndarray) -> dict:
    """Fit the logistic regression of the labels on the two branches' logits; return its weights and each branch's accuracy."""
    # Unregularized in effect: three parameters on thousands of reviews cannot overfit, and a penalty would shrink the logit's scale.
    regression = LogisticRegression(C=1e4, max_iter=1000).fit(logits, labels)
    (deep, wide), bias = regression.coef_[0], regression.intercept_[0]
    return {
        "deep_weight": float(deep), "wide_weight": float(wide), "bias": float(bias),
        "validation_accuracy": {"deep": float(np.mean((logits[:, 0] > 0) == labels)),
                                "wide": float(np.mean((logits[:, 1] > 0) == labels)),
                                "stacked": float(regression.score(logits, labels))},
    }


def fold_mix(classifier: keras.Model, mix: dict) -> None:
    """Scale each branch's output layer by its weight (and add the bias to the wide one): the summed logit becomes the mix's."""
    for name, weight, extra in (("deep_logit", mix["deep_weight"], 0.0), ("wide_logit", mix["wide_weight"], mix["bias"])):
        kernel, bias = classifier.get_layer(name).get_weights()
        classifier.get_layer(name).set_weights([kernel * weight, bias * weight + extra])


def stack(classifier: keras.Model, val_ds: tf.data.Dataset) -> dict:
    """Fit the branches' mix on the validation batches, fold it into ``classifier``; return the mix for the report."""
    labels, logits = branch_logits(classifier, val_ds)
    mix = fit_mix(labels, logits)
    fold_mix(classifier, mix)
    log.info("stacked on %d validation reviews: logit = %.3f x deep + %.3f x wide + %.3f (validation accuracy deep %.4f, wide %.4f, "
             "stacked %.4f)", len(labels), mix["deep_weight"], mix["wide_weight"], mix["bias"], *mix["validation_accuracy"].values())
    return mix
