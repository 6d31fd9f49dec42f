"""The recurrent branch rebuilt in plain TensorFlow: the Keras branch's outputs, in a LiteRT loop that carries only the readout."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment import models
from sentiment.config import make_config
from sentiment.export import litert_twin, plain_branch

ROWS = 5


def run(blob: bytes, ids: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """Run a converted branch on token ids int32 [rows, time]; return its output [rows] and the model's op names."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=blob)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], list(ids.shape))
    interpreter.allocate_tensors()
    outputs = []
    for _ in range(2):  # twice: a call starts from nothing the last one left
        interpreter.set_tensor(inp["index"], ids)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).reshape(-1))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    return outputs[-1], {op["op_name"] for op in interpreter._get_ops_details()}


def padded_rows(rng: np.random.Generator, lengths: list[int], time: int) -> np.ndarray:
    """Token ids int32 [len(lengths), time]: each row ``length`` random tokens, then padding."""
    ids = np.zeros((len(lengths), time), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(2, 50, size=n)
    return ids


@pytest.mark.parametrize("model, overrides, kind", [
    ("lstm", {"readout": "last"}, "lstm"), ("lstm", {"readout": "mean"}, "lstm"), ("lstm_chrono", {}, "lstm"),
    ("bilstm", {"readout": "last"}, "lstm"), ("lstm", {"readout": "max_mean", "bidirectional": True}, "lstm"),
    ("simple_rnn", {"readout": "last"}, "simple_rnn"), ("simple_rnn", {"readout": "max", "bidirectional": True}, "simple_rnn"),
    ("simple_rnn", {"readout": "max_mean", "bidirectional": True}, "simple_rnn"),
    ("wide_lstm", {"ngram_vocab_size": 40, "readout": "max_mean", "bidirectional": True}, "lstm"),
    # Gates × units no wider than the word vectors: the input products are looked up per word (word_tables).
    ("lstm", {"readout": "max_mean", "bidirectional": True, "units": 2, "embedding_dim": 8}, "lstm"),
    ("wide_lstm", {"ngram_vocab_size": 40, "readout": "max_mean", "bidirectional": True, "units": 2, "embedding_dim": 8}, "lstm"),
])
def test_the_plain_branch_gives_the_keras_branch_output(model, overrides, kind):
    """Rows of different lengths, one without tokens, padded at the end: each gives what the masked Keras branch gives."""
    config = make_config(model, vocab_size=50, max_len=40, seed=3, **{"embedding_dim": 4, "units": 4, **overrides})
    classifier = models.build_model(config)
    weights = plain_branch.branch_weights(classifier, config)
    assert weights is not None and weights.directions[0].cell == kind and len(weights.directions) == (2 if config.bidirectional or model == "bilstm" else 1)
    keras_branch = litert_twin.litert_branch(classifier, config, rows=ROWS).layers[-1]
    rng = np.random.default_rng(0)
    blob = plain_branch.convert_plain_branch(weights, ROWS)
    for time in (1, 7, 41):
        lengths = [time, 0, *rng.integers(1, time + 1, size=ROWS - 2).tolist()]
        ids = padded_rows(rng, lengths, time)
        got, ops = run(blob, ids)
        for row, n in enumerate(lengths):
            if n == 0 and "mean" in config.readout:  # Keras' masked mean of no steps is 0/0 = NaN; here a number
                assert np.isfinite(got[row])
                continue
            alone = keras_branch(ids[row : row + 1, : max(n, 1)], training=False)
            np.testing.assert_allclose(got[row], np.asarray(alone).reshape(-1)[0], atol=1e-5)
    assert "WHILE" in ops  # one loop; no list of states growing inside it (its ops are not builtins: conversion would fail)


@pytest.mark.parametrize("units, embedding_dim, looked_up", [(2, 8, True), (4, 8, False), (8, 8, False)])
def test_input_products_are_looked_up_only_where_no_wider_than_the_word_vectors(units, embedding_dim, looked_up):
    config = make_config("lstm", vocab_size=50, max_len=40, embedding_dim=embedding_dim, units=units, bidirectional=True, readout="max_mean")
    weights = plain_branch.branch_weights(models.build_model(config), config)
    tables = plain_branch.word_tables(weights)
    assert (tables is not None) == looked_up
    if looked_up:
        for table, direction in zip(tables, weights.directions):
            assert table.shape == (50, 4 * units) and table.dtype == np.float32
            np.testing.assert_allclose(table[7], weights.embeddings[7] @ direction.kernel + direction.bias, rtol=1e-5, atol=1e-6)


def test_a_gru_is_left_to_keras_conversion():
    config = make_config("gru", vocab_size=50, max_len=40, embedding_dim=4, units=4)
    assert plain_branch.branch_weights(models.build_model(config), config) is None


def test_what_the_rebuild_does_not_reproduce_is_left_to_keras():
    """A stateful layer, or an embedding that masks nothing, computes what the rebuilt loop does not."""
    import keras

    config = make_config("lstm", vocab_size=50, max_len=40, embedding_dim=4, units=4)
    classifier = models.build_model(config)
    assert plain_branch.branch_weights(classifier, config) is not None
    classifier.get_layer("embedding").mask_zero = False
    assert plain_branch.branch_weights(classifier, config) is None
    stateful = keras.layers.LSTM(4, stateful=True)
    assert plain_branch.direction_weights(stateful, backward=False) is None
