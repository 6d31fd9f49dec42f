"""The model registry: shapes, masking, cuDNN eligibility, the end-to-end wrapper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sentiment import input_pipeline, models
from sentiment.models import make_config


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_model_builds_and_outputs_probabilities(name):
    config = make_config(name, vocab_size=50, embedding_dim=4, units=4)
    model = models.build_model(config)
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]], dtype=np.int32)
    out = model(ids).numpy()
    assert out.shape == (2, 1) and out.dtype == np.float32
    assert ((out > 0) & (out < 1)).all()
    assert model.get_layer("embedding").mask_zero


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_padding_does_not_change_the_prediction(name):
    """Masking works: extra right padding leaves the output unchanged."""
    model = models.build_model(make_config(name, vocab_size=50, embedding_dim=4, units=4))
    short = model(np.array([[5, 6, 7]], dtype=np.int32)).numpy()
    padded = model(np.array([[5, 6, 7, 0, 0, 0, 0]], dtype=np.int32)).numpy()
    np.testing.assert_allclose(short, padded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "lstm_chrono", "gru", "bilstm"])
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
    from sentiment import preprocessing

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

    config = dataclasses.replace(make_config("lstm"), model="nope")
    with pytest.raises(ConfigError):
        models.build_model(config)


def test_chrono_bias_opens_forget_gates_for_the_horizon():
    bias = models.ChronoBias(max_steps=100, seed=0)((4 * 50,)).numpy()
    input_gate, forget_gate = bias[:50], bias[50:100]
    np.testing.assert_allclose(input_gate, -forget_gate)
    assert (forget_gate >= 0).all() and (forget_gate <= np.log(99) + 1e-6).all() and forget_gate.mean() > 2
    np.testing.assert_array_equal(bias[100:], 0)
