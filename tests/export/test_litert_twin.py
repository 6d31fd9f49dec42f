"""The LiteRT twin of an export: written, checked against the model, refused when it disagrees; every model converts."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sentiment import artifacts
from sentiment.config import Config, make_config
from sentiment.errors import ModelError
from sentiment.export import litert_twin, savedmodel

REVIEWS = ["A great, wonderful film!", "awful boring worst plot", "the movie"]


def test_export_carries_a_checked_litert_twin(run_dir, tmp_path):
    from sentiment.serving import litert_engine

    version = savedmodel.export_run(run_dir, tmp_path)
    manifest = json.loads((version / artifacts.LITERT_DIR / artifacts.LITERT_MANIFEST).read_text())
    assert set(manifest["files"]) == {"classifier.tflite", "vocabulary.txt"}
    # An LSTM: rebuilt in plain TensorFlow, linear in the length, one model for any number of rows.
    assert manifest["branch"] == litert_twin.PLAIN_LOOP and manifest["single"] == manifest["model"] == "classifier.tflite"
    config = Config.load(run_dir / "config.json")
    classifier = keras.saving.load_model(run_dir / "model.keras").get_layer(config.model)
    assert manifest["group_spread"] == (None if litert_twin.looks_up_words(classifier, config) else litert_engine.GROUP_SPREAD)
    assert manifest["check"]["reviews"] == litert_twin.PROBE_REVIEWS and manifest["check"]["max_abs_difference"] <= 1e-4
    assert not list((version / artifacts.LITERT_DIR).glob(".litert-*"))  # no staging dir left
    keras_probs = keras.saving.load_model(run_dir / "model.keras").predict(tf.constant(REVIEWS), verbose=0).reshape(-1)
    np.testing.assert_allclose(litert_engine.LiteRTPredictor(version).classifier.probabilities(REVIEWS), keras_probs, atol=1e-4)  # uncalibrated


@pytest.mark.parametrize("model, units, looked_up", [("lstm", 2, True), ("lstm", 4, False), ("simple_rnn", 8, True), ("gru", 2, False)])
def test_a_twin_groups_a_few_reviews_loosely_only_when_its_branch_looks_words_up(model, units, looked_up):
    from sentiment import models

    config = make_config(model, vocab_size=50, max_len=40, embedding_dim=8, units=units)
    assert litert_twin.looks_up_words(models.build_model(config), config) is looked_up


def test_export_goes_on_without_litert_when_conversion_fails(run_dir, tmp_path, monkeypatch, caplog):
    def unconvertible(model):
        raise ValueError("op not supported")

    monkeypatch.setattr(litert_twin, "convert_to_litert", unconvertible)
    monkeypatch.setattr(litert_twin.plain_branch, "convert_plain_branch", lambda weights, rows: unconvertible(None))
    with caplog.at_level("WARNING"):
        version = savedmodel.export_run(run_dir, tmp_path)
    assert (version / "saved_model.pb").exists() and "exported without a LiteRT model" in caplog.text
    assert sorted(p.name for p in (version / artifacts.LITERT_DIR).iterdir()) == ["checksums.json", "metadata.json", "tf_serving_warmup_requests"]


def test_litert_files_that_disagree_with_the_model_are_not_installed(run_dir, tmp_path):
    from sentiment.config import Config

    model = keras.saving.load_model(run_dir / "model.keras")
    config = Config.load(run_dir / "config.json")
    vocabulary = model.get_layer("preprocessor").get_layer("vectorizer").get_vocabulary()
    with pytest.raises(ModelError, match="differs from the model"):
        litert_twin.add_litert_files(tmp_path, model.get_layer(config.model), config, vocabulary, None, config.truncate,
                                lambda texts: np.full(len(texts), 0.5))
    assert list((tmp_path / artifacts.LITERT_DIR).iterdir()) == []


@pytest.mark.parametrize("model, overrides", [
    ("lstm", {}), ("lstm", {"readout": "mean"}), ("lstm_chrono", {}), ("gru", {}), ("simple_rnn", {}), ("bilstm", {}),
    ("lstm", {"readout": "max_mean", "bidirectional": True}), ("simple_rnn", {"readout": "max", "bidirectional": True}),
    ("wide_lstm", {"ngram_vocab_size": 40}),
])
def test_every_registered_model_converts_to_litert(model, overrides):
    """Each recurrent branch, a fixed batch of padded reviews of any length, gives the Keras branch's output in LiteRT,
    and padding changes nothing: each row gives what its review gives alone."""
    from ai_edge_litert.interpreter import Interpreter

    from sentiment import models

    config = make_config(model, vocab_size=50, max_len=40, embedding_dim=4, units=4, **overrides)
    branch = litert_twin.litert_branch(models.build_model(config), config)
    alone = branch.layers[-1]  # the same layers on any batch size
    interpreter = Interpreter(model_content=litert_twin.convert_to_litert(branch))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape_signature"]) == [litert_twin.BATCH, -1]
    rng = np.random.default_rng(0)
    for length in (1, 6, 41):
        lengths = rng.integers(1, length + 1, size=litert_twin.BATCH)
        lengths[0] = length
        ids = np.zeros((litert_twin.BATCH, length), np.int32)
        for row, n in enumerate(lengths):
            ids[row, :n] = rng.integers(2, 50, size=n)
        interpreter.resize_tensor_input(inp["index"], list(ids.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], ids)
        interpreter.invoke()
        got = interpreter.get_tensor(out["index"])
        np.testing.assert_allclose(got, branch(ids, training=False), atol=1e-5)
        for row in (0, 1, 2):
            np.testing.assert_allclose(got[row], alone(ids[row : row + 1, : lengths[row]], training=False)[0], atol=1e-5)
