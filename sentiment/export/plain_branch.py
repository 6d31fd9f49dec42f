"""The recurrent branch rebuilt in plain TensorFlow from a classifier's weights, for a LiteRT model linear in the review's length.

Keras' own conversion (``litert_twin.convert_to_litert``) keeps the recurrent layer as a WHILE loop that, when the
readout pools every state (max, mean), writes each step's state into a growing list: its cost grows with the
square of the length (measured: ``lstm/3``, one review of 256 tokens, 280–413 ms). Here one loop runs the cell of
each direction and carries only what the readout needs (the last state, a running max and sum), so nothing grows.
Measured on the shipped models (ms per review of 256 tokens, one thread): ``lstm/3`` one review 1.7, in rows of 64
1.1 (Keras' loop: hundreds); ``wide_lstm/4`` (last state only, where Keras' loop is linear too) 0.64 and 0.37
against Keras' 1.02 and 0.38; the converter's fused LSTM kernel (reached through Keras 2's ``api_implements``
attributes) took 2.3 and 2.6, as it runs the rows of a batch one by one.

It takes no mask: reviews are padded at the end, the loop's state and readouts stop at each row's last token,
and the backward direction runs on each row's tokens reversed in place. Its output equals the Keras branch's
(``litert_twin.check_litert`` holds it to ``litert_engine.TOLERANCE`` before anything is kept).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io

import keras
import numpy as np
import tensorflow as tf

from sentiment.config import Config

NEGATIVE = -1e9  # a padding step's value in the max readout, as models.MaskedMaxPooling gives it


@dataclasses.dataclass(frozen=True)
class Direction:
    """One direction's recurrent weights, float32: kernel [embedding, gates × units], recurrent_kernel [units, gates × units], bias [gates × units]."""

    cell: str  # "lstm" (gates i, f, c, o as Keras orders them) or "simple_rnn" (tanh)
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray


@dataclasses.dataclass(frozen=True)
class BranchWeights:
    """What the recurrent branch computes: embedding → directions → readout → output layer."""

    embeddings: np.ndarray  # float32 [vocab, embedding]
    directions: list[Direction]  # forward, then (bidirectional) backward
    readout: str  # last, max, mean or max_mean (Config.readout)
    output: str  # the output layer's name: "probability" (sigmoid) or a wide model's "deep_logit"
    output_kernel: np.ndarray  # float32 [features, 1]
    output_bias: np.ndarray  # float32 [1]


def direction_weights(layer: keras.layers.Layer, backward: bool) -> Direction | None:
    """Return an LSTM or SimpleRNN layer's weights, or None for a cell this module does not rebuild (GRU, other activations)."""
    cell = getattr(layer, "cell", None)
    tanh, sigmoid = keras.activations.tanh, keras.activations.sigmoid
    if isinstance(layer, keras.layers.LSTM) and cell.activation is tanh and cell.recurrent_activation is sigmoid and cell.use_bias:
        kind = "lstm"
    elif isinstance(layer, keras.layers.SimpleRNN) and cell.activation is tanh and cell.use_bias:
        kind = "simple_rnn"
    else:
        return None
    if layer.go_backwards != backward or layer.stateful or layer.compute_dtype != "float32":  # a Bidirectional's backward layer reads backwards
        return None
    return Direction(kind, *(np.asarray(keras.ops.convert_to_numpy(w), np.float32) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)))


def branch_weights(classifier: keras.Model, config: Config) -> BranchWeights | None:
    """Return the recurrent branch's weights, or None when it is not one this module rebuilds (then Keras' conversion serves)."""
    recurrent = classifier.get_layer("recurrent")
    layers = [recurrent.forward_layer, recurrent.backward_layer] if isinstance(recurrent, keras.layers.Bidirectional) else [recurrent]
    directions = [direction_weights(layer, backward=k == 1) for k, layer in enumerate(layers)]
    if any(d is None for d in directions) or len({d.cell for d in directions}) != 1 or config.readout not in ("last", "max", "mean", "max_mean"):
        return None
    if isinstance(recurrent, keras.layers.Bidirectional) and recurrent.merge_mode != "concat":
        return None
    output = "deep_logit" if config.ngram_vocab_size else "probability"
    dense, embedding = classifier.get_layer(output), classifier.get_layer("embedding")
    activation = keras.activations.sigmoid if output == "probability" else keras.activations.linear
    if dense.activation is not activation or not embedding.mask_zero:  # what plain_branch computes: the mask of id 0, then this
        return None
    embeddings = np.asarray(keras.ops.convert_to_numpy(embedding.embeddings), np.float32)
    kernel, bias = (np.asarray(keras.ops.convert_to_numpy(w), np.float32) for w in (dense.kernel, dense.bias))
    return BranchWeights(embeddings, directions, config.readout, output, kernel, bias)


def readout_features(directions: list[tuple[tf.Tensor, ...]], readout: str) -> tf.Tensor:
    """Concatenate each direction's (last, max, mean) [batch, units] as ``readout`` asks, in Keras' order: max of both, then mean of both."""
    if readout == "last":
        return tf.concat([d[0] for d in directions], axis=1)
    parts = []
    if readout in ("max", "max_mean"):
        parts += [d[1] for d in directions]
    if readout in ("mean", "max_mean"):
        parts += [d[2] for d in directions]
    return tf.concat(parts, axis=1)


def looks_up_words(weights: BranchWeights) -> bool:
    """Return True if every direction's gates × units are no wider than the word vectors: its input products are then looked up (word_tables)."""
    return all(d.kernel.shape[1] <= weights.embeddings.shape[1] for d in weights.directions)


def word_tables(weights: BranchWeights) -> list[np.ndarray] | None:
    """Return each direction's input product for every word, float32 [vocab, gates × units] (embedding · kernel + bias), or None
    when a direction's table would be wider than the embedding it replaces.

    Gathered instead of multiplied, a step's input product costs a lookup. Measured on 4,964 reviews (random weights of the
    default's shapes, one thread): a BiLSTM of 32 units on 128-d vectors (tables as wide as the embedding) took 0.84–1.18 s
    against 1.67–1.95 s multiplied, one review 1.06–2.00 ms against 1.40–2.43; at 64 units (tables twice as wide) a batch
    gained only ~20%, a single review lost, and the file grew fourfold.
    """
    if not looks_up_words(weights):
        return None
    return [(weights.embeddings @ d.kernel + d.bias).astype(np.float32) for d in weights.directions]


def loop_directions(steps: list[tf.Tensor], mask: tf.Tensor, directions: list[Direction], readout: str) -> list[tuple[tf.Tensor, ...]]:
    """Run the cells over their input products [time, rows, gates × units] in one loop carrying the readout; return each one's last, max
    and mean [rows, units].

    Every step's input product is made before the loop, and the loop's condition reads a number, not a
    tensor: LiteRT copies what a loop's condition takes at every step, so the cost stays linear in the
    review's length. Only the readouts asked for are carried (others are returned as zeros).
    """
    units, lstm = directions[0].recurrent_kernel.shape[0], directions[0].cell == "lstm"
    step_mask = tf.transpose(tf.cast(mask, tf.bool), [1, 0, 2])  # [time, rows, 1]
    recurrent = [tf.constant(d.recurrent_kernel) for d in directions]
    zeros = tf.zeros_like(steps[0][0, :, :units])
    count = tf.shape(steps[0])[0]
    carried = readout.split("_")  # which readouts to carry besides the state: "max", "mean"

    def body(t, *state):
        m, out = tf.gather(step_mask, t), []
        for k, (h, c, largest, total) in enumerate(zip(*[iter(state)] * 4)):
            z = tf.gather(steps[k], t) + tf.matmul(h, recurrent[k])
            if lstm:
                i, f, g, o = tf.split(z, 4, axis=1)
                new_c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
                new, c = tf.sigmoid(o) * tf.tanh(new_c), tf.where(m, new_c, c)
            else:
                new = tf.tanh(z)
            largest = tf.where(m, tf.maximum(largest, new), largest) if "max" in carried else largest
            total = tf.where(m, total + new, total) if "mean" in carried else total
            out += [tf.where(m, new, h), c, largest, total]
        return (t + 1, *out)

    initial = [zeros, zeros, zeros + NEGATIVE, zeros] * len(directions)
    final = tf.while_loop(lambda t, *_: t < count, body, (tf.constant(0), *initial))[1:]
    counts = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # [rows, 1]
    return [(final[4 * k], final[4 * k + 2], final[4 * k + 3] / counts) for k in range(len(directions))]


def plain_branch(weights: BranchWeights, rows: int | None = None) -> tuple[tf.Module, tf.types.experimental.ConcreteFunction]:
    """Return the branch as a tf.Module and its function: token ids int32 [rows, time] (0-padded at the end) → the output [rows, 1].

    ``rows`` None: any number of rows a call (nothing in the loop fixes it), so one model serves one review and a batch.
    """
    module = tf.Module()
    tables = word_tables(weights)
    embeddings = tf.constant(weights.embeddings) if tables is None else None

    @tf.function(input_signature=[tf.TensorSpec([rows, None], tf.int32, name="token_ids")])
    def branch(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(token_ids, 0), tf.int32), axis=1)
        # Padding (id 0) only at the end of a row, as the engine pads: lengths count the real tokens.
        mask = tf.gather(tf.constant([[0.0], [1.0]]), tf.minimum(token_ids, 1))  # [rows, time, 1], no reshape that would fix the time
        # The backward direction: each row's real tokens reversed in place, the padding left at the end.
        ids = [token_ids, tf.reverse_sequence(token_ids, lengths, seq_axis=1, batch_axis=0)][: len(weights.directions)]
        if tables is not None:  # [time, rows, gates × units], looked up
            steps = [tf.gather(table, tf.transpose(i)) for table, i in zip(tables, ids)]
        else:
            steps = [tf.matmul(tf.transpose(tf.gather(embeddings, i), [1, 0, 2]), d.kernel) + d.bias for i, d in zip(ids, weights.directions)]
        read = loop_directions(steps, mask, weights.directions, weights.readout)
        logit = tf.matmul(readout_features(read, weights.readout), weights.output_kernel) + weights.output_bias
        return {weights.output: tf.sigmoid(logit) if weights.output == "probability" else logit}

    module.branch = branch
    return module, branch.get_concrete_function()


def convert_plain_branch(weights: BranchWeights, rows: int | None = None) -> bytes:
    """Return the plain branch on ``rows`` reviews (None: any number) as a LiteRT flatbuffer of builtin ops.

    From the concrete function with its module: that path keeps the function boundaries the fusion pass needs.
    """
    module, function = plain_branch(weights, rows)
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_concrete_functions([function], trackable_obj=module).convert()
