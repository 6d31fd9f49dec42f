"""The model registry: shapes, masking, cuDNN eligibility, the end-to-end wrapper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sentiment import models
from sentiment.config import PRESETS, make_config
from sentiment.data import batching


def small_config(name: str, **overrides) -> "models.Config":
    """A tiny config of model ``name`` (a 40-entry n-gram vocabulary if it has a wide branch)."""
    wide = {"ngram_vocab_size": 40} if PRESETS[name].get("ngram_vocab_size") else {}
    return make_config(name, **{"vocab_size": 50, "embedding_dim": 4, "units": 4, **wide, **overrides})


def model_inputs(config: "models.Config", ids: np.ndarray) -> np.ndarray | dict:
    """Token ids as the model takes them; a wide model also gets n-gram ids (the token ids shifted, same padding)."""
    if not config.ngram_vocab_size:
        return ids
    return {batching.TOKEN_IDS: ids, batching.NGRAM_IDS: np.where(ids > 0, ids % 37 + 2, 0).astype(np.int32)}


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_model_builds_and_outputs_probabilities(name):
    config = small_config(name)
    model = models.build_model(config)
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]], dtype=np.int32)
    out = model(model_inputs(config, ids)).numpy()
    assert out.shape == (2, 1) and out.dtype == np.float32
    assert ((out > 0) & (out < 1)).all()
    assert model.get_layer("embedding").mask_zero


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_padding_does_not_change_the_prediction(name):
    """Masking works: extra right padding leaves the output unchanged."""
    config = small_config(name)
    model = models.build_model(config)
    short = model(model_inputs(config, np.array([[5, 6, 7]], dtype=np.int32))).numpy()
    padded = model(model_inputs(config, np.array([[5, 6, 7, 0, 0, 0, 0]], dtype=np.int32))).numpy()
    np.testing.assert_allclose(short, padded, rtol=1e-5, atol=1e-6)


def test_the_wide_model_is_the_default_minus_its_recurrent_part():
    """`wide` keeps wide_lstm's inputs, n-gram layers and recipe; it has no embedding or recurrent layer."""
    wide, full = (models.build_model(small_config(name)) for name in ("wide", "wide_lstm"))
    ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0]], dtype=np.int32)
    out = wide(model_inputs(small_config("wide"), ids)).numpy()
    assert out.shape == (2, 1) and ((out > 0) & (out < 1)).all()
    names = {layer.name for layer in wide.layers}
    assert {"ngram_tfidf", "wide_logit"} <= names and not names & {"embedding", "recurrent", "deep_logit"}
    assert {layer.name for layer in full.layers} > names - {"ngram_ids", "token_ids"}
    assert sum(int(np.prod(w.shape)) for w in wide.trainable_weights) == full.get_layer("wide_logit").count_params()
    # The same n-gram features, batches, step size and epochs as the default's n-gram branch; nothing of its recurrent part.
    assert PRESETS["wide"] == {k: PRESETS["wide_lstm"][k] for k in PRESETS["wide"]}
    assert set(PRESETS["wide_lstm"]) - set(PRESETS["wide"]) == {"branches", "vocab_size", "embedding_dim", "word_vector_epochs"}
    assert models.describe_kernel(wide) == "no recurrent layer"
    with pytest.raises(models.ConfigError, match="ngram_vocab_size=0 is invalid: it must be at least 3 for model wide"):
        small_config("wide", ngram_vocab_size=0)
    with pytest.raises(models.ConfigError, match="pretrain_epochs=2 is invalid: it must be 0 for model wide"):
        small_config("wide", pretrain_epochs=2)


READOUTS = [(name, readout, bidirectional) for name in ("simple_rnn", "lstm") for readout in ("mean", "max", "max_mean")
            for bidirectional in (False, True)] + [("lstm", "last", True), ("wide_lstm", "max_mean", True)]


@pytest.mark.parametrize("name, readout, bidirectional", READOUTS)
def test_pooled_and_bidirectional_readouts_ignore_padding_and_save(name, readout, bidirectional, tmp_path):
    """Every readout reads real steps only: right padding changes nothing, before and after a save and reload."""
    config = small_config(name, readout=readout, bidirectional=bidirectional)
    model = models.build_model(config)
    width = {"last": 4, "mean": 4, "max": 4, "max_mean": 8}[readout] * (2 if bidirectional else 1)
    assert model.get_layer("dropout").output.shape[-1] == width
    assert isinstance(model.get_layer("recurrent"), keras.layers.Bidirectional) == bidirectional
    short = model(model_inputs(config, np.array([[5, 6, 7]], dtype=np.int32))).numpy()
    padded = model(model_inputs(config, np.array([[5, 6, 7, 0, 0, 0, 0]], dtype=np.int32))).numpy()
    np.testing.assert_allclose(short, padded, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded(model_inputs(config, np.array([[5, 6, 7, 0]], dtype=np.int32))).numpy(), short, rtol=1e-5)


def test_max_pooling_never_picks_a_padding_step():
    states = tf.constant([[[1.0, -5.0], [2.0, -6.0], [0.0, 0.0]]])  # the last step is padding, with the largest second value
    mask = tf.constant([[True, True, False]])
    np.testing.assert_array_equal(models.MaskedMaxPooling()(states, mask=mask).numpy(), [[2.0, -5.0]])


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bidirectional_gated_layers_stay_cudnn_eligible(name):
    cells = models.recurrent_cells(models.build_model(make_config(name, vocab_size=50, bidirectional=True, readout="max_mean")))
    assert len(cells) == 2 and all(models.cudnn_eligible(c) for c in cells)


@pytest.mark.parametrize("name", ["lstm", "lstm_chrono", "gru", "bilstm", "wide_lstm"])
def test_gated_models_stay_cudnn_eligible(name):
    """Guards the GPU path: changing an argument that disables cuDNN fails here."""
    cells = models.recurrent_cells(models.build_model(make_config(name, vocab_size=50)))
    assert cells and all(models.cudnn_eligible(c) for c in cells)


def test_cudnn_check_catches_ineligible_arguments():
    assert not models.cudnn_eligible(keras.layers.LSTM(4, recurrent_dropout=0.1))
    assert not models.cudnn_eligible(keras.layers.LSTM(4, activation="relu"))
    assert not models.cudnn_eligible(keras.layers.GRU(4, reset_after=False))
    assert not models.cudnn_eligible(keras.layers.LSTM(4, unroll=True))
    assert not models.cudnn_eligible(keras.layers.SimpleRNN(4))


def test_mixed_precision_is_ignored_without_gpu():
    config = make_config("lstm", mixed_precision=True, vocab_size=50)
    expected = "mixed_float16" if models.gpu_available() else "float32"
    assert models.compute_dtype(config) == expected
    assert models.build_model(config).get_layer("probability").dtype_policy.compute_dtype == "float32"


def test_end_to_end_model_saves_and_reloads(tmp_path):
    from sentiment.data import preprocessing

    config = make_config("lstm", vocab_size=50, embedding_dim=4, units=4, max_len=5)
    preprocessor = preprocessing.make_preprocessor(config, ["", "[UNK]", "great", "film", "awful"])
    model = models.build_end_to_end(models.build_model(config), preprocessor)
    texts = tf.constant(["A GREAT film!<br />", "awful " * 50])
    before = model(texts).numpy()
    model.save(tmp_path / "m.keras")
    after = keras.saving.load_model(tmp_path / "m.keras")(texts).numpy()
    np.testing.assert_allclose(before, after, rtol=1e-6)
    # Truncation to max_len happens inside the model's preprocessing layer.
    assert model.get_layer("preprocessor")(texts).shape == (2, 5)


def test_unknown_model_name_is_refused():
    import dataclasses

    from sentiment.errors import ConfigError

    with pytest.raises(ConfigError):  # the Config refuses it now, before build_model would
        models.build_model(dataclasses.replace(make_config("lstm"), model="nope"))


def test_chrono_bias_opens_forget_gates_for_the_horizon():
    bias = models.ChronoBias(max_steps=100, seed=0)((4 * 50,)).numpy()
    input_gate, forget_gate = bias[:50], bias[50:100]
    np.testing.assert_allclose(input_gate, -forget_gate)
    assert (forget_gate >= 0).all() and (forget_gate <= np.log(99) + 1e-6).all() and forget_gate.mean() > 2
    np.testing.assert_array_equal(bias[100:], 0)


def wide_end_to_end(config: "models.Config", texts: list[str]) -> keras.Model:
    """A wide LSTM on raw strings whose vocabularies and idf come from ``texts``."""
    from sentiment.data import preprocessing

    vocabulary = preprocessing.learn_vocabulary(texts, config)
    ngrams = preprocessing.learn_ngram_vocabulary(texts, config)
    idf = preprocessing.inverse_document_frequency(texts, config, ngrams)
    preprocessor = preprocessing.make_preprocessor(config, vocabulary, ngrams)
    return models.build_end_to_end(models.build_model(config, idf), preprocessor)


TEXTS = ["A great film, great cast!", "awful boring film<br />awful", "the cast was great", "boring, boring, boring ?"]


def test_wide_branch_is_a_linear_tfidf_logit_added_before_the_sigmoid():
    config = small_config("wide_lstm", max_len=6)
    model = wide_end_to_end(config, TEXTS)
    classifier = model.get_layer(config.model)
    texts = tf.constant(TEXTS)
    features = tf.sparse.to_dense(classifier.get_layer("ngram_tfidf")(model.get_layer("preprocessor")(texts)[batching.NGRAM_IDS])).numpy()
    # Silence the recurrent branch: what is left is logistic regression on the TF-IDF features.
    dense = classifier.get_layer("deep_logit")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    kernel, bias = classifier.get_layer("wide_logit").get_weights()
    expected = 1 / (1 + np.exp(-(features @ kernel + bias)))
    np.testing.assert_allclose(model(texts).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), config.ngram_scale, rtol=1e-5)


def test_wide_end_to_end_model_saves_and_reloads_with_its_idf(tmp_path):
    config = small_config("wide_lstm", max_len=6)
    model = wide_end_to_end(config, TEXTS)
    texts = tf.constant(TEXTS + ["never seen words only"])
    before = model(texts).numpy()
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(before, again(texts).numpy(), rtol=1e-6)
    idf = again.get_layer(config.model).get_layer("ngram_tfidf").idf.numpy()
    assert idf.shape == (40,) and idf[:2].tolist() == [0, 0] and idf[2:].max() > 1
