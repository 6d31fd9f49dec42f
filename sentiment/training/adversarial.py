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
        # The same layers from the word vectors on: the graph the perturbed vectors run through.
        self.head = keras.Model(embedded_inputs(model, self.embedding), model.outputs, name=f"{model.name}_head")

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
        """One step on ``loss(x) + loss(x with adversarial word vectors)``; logs the clean loss as ``loss``."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        token_ids = x[TOKEN_IDS] if isinstance(x, dict) else x
        mask = self.embedding.compute_mask(token_ids)
        with tf.GradientTape(persistent=True) as tape:  # read twice: the step's direction, then the weights' gradients
            vectors = tf.identity(self.embedding(token_ids, training=True))  # the head takes the mask as an input, not attached
            y_pred = self.run_head(x, vectors, mask)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            with tape.stop_recording():
                direction = tape.gradient(loss, vectors)
            step = adversarial_step(vectors, tf.stop_gradient(direction), mask, self.epsilon)
            adversarial_loss = self._compute_loss(x=x, y=y, y_pred=self.run_head(x, vectors + step, mask), sample_weight=sample_weight,
                                                  training=True)
            total = self.optimizer.scale_loss(loss + adversarial_loss)
        rows = tf.shape(token_ids)[0]
        self._loss_tracker.update_state(loss, sample_weight=rows)
        self.adversarial_loss.update_state(adversarial_loss, sample_weight=rows)
        gradients = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """Evaluate as the wrapped model: no adversarial pass, so no ``val_adversarial_loss``."""
        logs = super().test_step(data)
        return {name: value for name, value in logs.items() if name != self.adversarial_loss.name}

    def run_head(self, x, vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Run the graph from the word vectors float32 [batch, time, dim] on; the other inputs (n-gram ids) as given."""
        others = [x[tensor.name] for tensor in self.model.inputs if tensor.name != TOKEN_IDS] if isinstance(x, dict) else []
        return self.head([vectors, mask, *others], training=True)


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
