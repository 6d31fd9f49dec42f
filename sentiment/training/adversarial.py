"""Adversarial training on the word vectors (Miyato, Dai & Goodfellow, 2017).

Each training batch is seen twice: as it is, and with every review's word vectors moved a
small step in the direction that raises its loss most (the gradient of the loss with respect
to the embedded review, normalized over the whole review). The model learns from both losses,
so a small change of wording cannot flip its verdict; on IMDB this was the route by which an
LSTM gained about a point over the same LSTM without it. Word vectors are free to grow, which
would make a fixed step meaningless, so the step is a fraction (``epsilon``) of the review's
own vectors' norm. The model predicts exactly as the graph it wraps: only training changes.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from sentiment.data.batching import TOKEN_IDS

EMBEDDING = "embedding"  # the layer whose output is perturbed (sentiment.models.recurrent_features)


@keras.saving.register_keras_serializable(package="sentiment")
class AdversarialModel(keras.Model):
    """Wraps a model (the classifier, or the stacked branches' trainer): predicts as it does, trains on clean and perturbed word vectors."""

    def __init__(self, model: keras.Model, epsilon: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.model, self.epsilon = model, float(epsilon)
        self.adversarial_loss = keras.metrics.Mean(name="adversarial_loss")
        self.embedding = model.get_layer(EMBEDDING)
        self.head = head_model(model, self.embedding)

    def call(self, inputs, training: bool = False):
        """Predict as the wrapped model."""
        return self.model(inputs, training=training)

    def get_config(self) -> dict:
        """Return the wrapped model and the step size."""
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model), "epsilon": self.epsilon}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> AdversarialModel:
        """Rebuild the wrapped model, then the wrapper."""
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects=custom_objects)
        return cls(model, **config)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        """The compiled metrics and the adversarial loss (reset by Keras each epoch)."""
        return [*super().metrics, self.adversarial_loss]

    def train_step(self, data):
        """One step on ``loss(x) + loss(x with adversarial word vectors)``; logs the clean loss as ``loss``.

        Two forward and two backward passes: the clean loss's backward gives the weights' gradients and the step's
        direction at once, then the perturbed loss's backward adds its own (measured: about 2.1 times a plain step).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        token_ids = x[TOKEN_IDS] if isinstance(x, dict) else x
        mask = self.embedding.compute_mask(token_ids)
        weights = self.trainable_weights
        with tf.GradientTape() as tape:
            vectors = tf.identity(self.embedding(token_ids, training=True))  # the head takes the mask as an input, not attached
            y_pred = self.run_head(x, vectors, mask)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        *gradients, direction = tape.gradient(scaled, [*weights, vectors])
        step = adversarial_step(vectors, direction, mask, self.epsilon)
        with tf.GradientTape() as tape:
            moved = self.embedding(token_ids, training=True) + step
            adversarial_loss = self._compute_loss(x=x, y=y, y_pred=self.run_head(x, moved, mask), sample_weight=sample_weight,
                                                  training=True)
            scaled = self.optimizer.scale_loss(adversarial_loss)
        gradients = [add_gradients(a, b) for a, b in zip(gradients, tape.gradient(scaled, weights))]
        rows = tf.shape(token_ids)[0]
        self._loss_tracker.update_state(loss, sample_weight=rows)
        self.adversarial_loss.update_state(adversarial_loss, sample_weight=rows)
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """Evaluate as the wrapped model: no adversarial pass, so no ``val_adversarial_loss``."""
        logs = super().test_step(data)
        return {name: value for name, value in logs.items() if name != self.adversarial_loss.name}

    def run_head(self, x, vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Run the graph from the word vectors float32 [batch, time, dim] on; the other inputs (n-gram ids) as given."""
        others = [x[tensor.name] for tensor in self.model.inputs if tensor.name != TOKEN_IDS] if isinstance(x, dict) else []
        return self.head([vectors, mask, *others], training=True)


def add_gradients(a, b):
    """Return the sum of two gradients of one variable; an embedding's (IndexedSlices: rows and their ids) stays sparse."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def head_model(model: keras.Model, embedding: keras.layers.Layer) -> keras.Model:
    """Return the same layers from the word vectors on: the graph the perturbed vectors run through."""
    inputs = embedded_inputs(model, embedding)
    # Keras (3.15) wires a model input passed on to a new functional model (a wide model's n-gram ids) as a second node
    # of its InputLayer, and ``model`` can then no longer be saved (could not find node key ..._ib-1): its place is restored.
    histories = [(tensor, tensor._keras_history) for tensor in inputs[2:]]
    head = keras.Model(inputs, model.outputs, name=f"{model.name}_head")
    for tensor, history in histories:
        tensor._keras_history = history
    return head


def embedded_inputs(model: keras.Model, embedding: keras.layers.Layer) -> list[keras.KerasTensor]:
    """Return the head's inputs: the embedding's output, the padding mask the layers after it read, the model's other inputs."""
    others = [tensor for tensor in model.inputs if tensor.name != TOKEN_IDS]
    return [embedding.output, padding_mask(model), *others]


def padding_mask(model: keras.Model) -> keras.KerasTensor:
    """Return the graph's padding mask: bool [batch, time], computed from the token ids beside the embedding, not from its output."""
    # Keras records the mask as its own node (not_equal on the ids) passed to each masked layer's call, so a graph
    # cut at the embedding's output must take it as an input too; it is found where the layers receive it.
    for layer in model.layers:
        for node in layer._inbound_nodes:
            mask = node.arguments.kwargs.get("mask")
            if isinstance(mask, keras.KerasTensor):
                return mask
    raise ValueError(f"{model.name} has no masked layer after its embedding")


def adversarial_step(vectors: tf.Tensor, direction: tf.Tensor, mask: tf.Tensor, epsilon: float) -> tf.Tensor:
    """Return the perturbation float32 [batch, time, dim]: ``direction`` scaled per review to ``epsilon`` × the norm of its real word vectors."""
    keep = tf.cast(mask, vectors.dtype)[..., None]
    direction = direction * keep
    length = tf.sqrt(tf.reduce_sum(tf.square(vectors * keep), axis=[1, 2], keepdims=True))
    return epsilon * length * tf.math.l2_normalize(direction, axis=[1, 2], epsilon=1e-24)


def wrap(model: keras.Model, epsilon: float) -> AdversarialModel:
    """Return ``model`` wrapped (the same layers and weights) to train adversarially with step size ``epsilon``."""
    return AdversarialModel(model, epsilon=epsilon, name=f"{model.name}_adversarial")
