"""Adversarial training on the word vectors: the step's size and direction, the wrapper's weights, saving, a whole run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.config import make_config
from sentiment.errors import ConfigError
from sentiment.training import adversarial, experiment, stacking


def tiny_lstm(**overrides) -> keras.Model:
    config = make_config("lstm", vocab_size=50, embedding_dim=8, units=4, bidirectional=True, readout="max_mean",
                         embedding_dropout=0.0, dropout=0.0, **overrides)
    return models.compile_model(models.build_model(config), config)


def padded_ids(rows: int = 8, seed: int = 0) -> np.ndarray:
    """Token ids int32 [rows, 12], row i padded after 4 + i tokens (some rows fill the width)."""
    ids = np.random.default_rng(seed).integers(1, 50, (rows, 12)).astype(np.int32)
    for i in range(rows):
        ids[i, 4 + i:] = 0
    return ids


def test_the_step_is_epsilon_times_each_reviews_vector_norm_and_spares_padding():
    rng = np.random.default_rng(0)
    vectors = tf.constant(rng.normal(size=(3, 5, 4)).astype(np.float32))
    direction = tf.constant(rng.normal(size=(3, 5, 4)).astype(np.float32))
    mask = tf.constant([[True] * 5, [True, True, True, False, False], [True, False, False, False, False]])
    step = adversarial.adversarial_step(vectors, direction, mask, 0.1).numpy()
    real = mask.numpy()[..., None]
    assert np.all(step[~mask.numpy()] == 0)
    for row in range(3):
        expected = 0.1 * np.linalg.norm(vectors.numpy()[row] * real[row])
        assert np.linalg.norm(step[row]) == pytest.approx(expected, rel=1e-5)
        # Along the direction: the same vector up to a positive factor.
        kept = direction.numpy()[row] * real[row]
        assert np.dot(step[row].ravel(), kept.ravel()) == pytest.approx(np.linalg.norm(step[row]) * np.linalg.norm(kept), rel=1e-5)


def test_the_step_raises_the_loss_more_than_random_steps_of_its_size():
    model = tiny_lstm()
    trainer = adversarial.wrap(model, 0.05)
    ids = tf.constant(padded_ids())
    labels = tf.constant(np.arange(8) % 2, tf.float32)[:, None]
    mask = trainer.embedding.compute_mask(ids)
    vectors = tf.identity(trainer.embedding(ids))

    def loss(v: tf.Tensor) -> tf.Tensor:
        return keras.losses.binary_crossentropy(labels, trainer.head([v, mask]))  # per review [8]

    with tf.GradientTape() as tape:
        tape.watch(vectors)
        total = tf.reduce_sum(loss(vectors))
    step = adversarial.adversarial_step(vectors, tape.gradient(total, vectors), mask, 0.05)
    rise = (loss(vectors + step) - loss(vectors)).numpy()
    rng = np.random.default_rng(1)
    random_rises = [(loss(vectors + adversarial.adversarial_step(vectors, tf.constant(rng.normal(size=vectors.shape), tf.float32), mask, 0.05))
                     - loss(vectors)).numpy() for _ in range(20)]
    assert np.all(rise > 0)
    assert np.all(rise > np.max(random_rises, axis=0))


def test_the_wrapper_trains_the_classifiers_own_weights_and_predicts_as_it():
    model = tiny_lstm()
    before = [w.copy() for w in model.get_weights()]
    trainer = models.compile_model(adversarial.wrap(model, 0.05), make_config("lstm"))
    assert [id(w) for w in trainer.trainable_weights] and {id(w) for w in trainer.trainable_weights} == {id(w) for w in model.trainable_weights}
    ids = padded_ids(32)
    labels = (ids[:, 0] > 25).astype(np.float32)
    history = trainer.fit(ids, labels, validation_data=(ids, labels), epochs=2, batch_size=8, verbose=0).history
    assert {"loss", "adversarial_loss", "accuracy", "val_loss"} <= set(history) and "val_adversarial_loss" not in history
    assert history["adversarial_loss"][0] > 0
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_array_equal(trainer.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_one_step_descends_the_clean_loss_plus_the_loss_at_the_step():
    model = tiny_lstm()
    trainer = adversarial.wrap(model, 0.05)
    trainer.compile(optimizer=keras.optimizers.SGD(1.0), loss="binary_crossentropy")
    ids = tf.constant(padded_ids())
    labels = tf.constant(np.arange(8) % 2, tf.float32)[:, None]
    mask = trainer.embedding.compute_mask(ids)
    weights = trainer.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        vectors = tf.identity(trainer.embedding(ids))
        clean = keras.losses.BinaryCrossentropy()(labels, trainer.head([vectors, mask]))
    step = adversarial.adversarial_step(vectors, tape.gradient(clean, vectors), mask, 0.05)
    with tape:
        total = clean + keras.losses.BinaryCrossentropy()(labels, trainer.head([trainer.embedding(ids) + step, mask]))
    expected = [w.numpy() - tf.convert_to_tensor(g).numpy() for w, g in zip(weights, tape.gradient(total, weights))]
    trainer.train_on_batch(ids, labels)
    for w, e in zip(weights, expected):
        np.testing.assert_allclose(w.numpy(), e, atol=1e-5)


def test_a_saved_wrapper_loads_with_its_step_size_and_weights(tmp_path):
    trainer = adversarial.wrap(tiny_lstm(), 0.03)
    models.save_model(trainer, tmp_path / "best.keras")
    loaded = models.load_model(tmp_path / "best.keras")
    assert isinstance(loaded, adversarial.AdversarialModel) and loaded.epsilon == 0.03
    ids = padded_ids()
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), trainer.predict(ids, verbose=0), atol=1e-6)


def test_the_stacked_branches_train_adversarially_too(tmp_path):
    config = make_config("wide_lstm", vocab_size=20, ngram_vocab_size=30, embedding_dim=4, units=4, branches="stacked", adversarial=0.05)
    classifier = models.compile_model(models.build_model(config, np.ones(30, np.float32)), config)
    trainer = experiment.fitted_model(classifier, config)
    assert isinstance(trainer, adversarial.AdversarialModel) and trainer.model.output_shape == (None, 2)
    rng = np.random.default_rng(0)
    inputs = {"token_ids": rng.integers(1, 20, (32, 7)).astype(np.int32), "ngram_ids": rng.integers(1, 30, (32, 9)).astype(np.int32)}
    history = trainer.fit(inputs, rng.integers(0, 2, 32).astype(np.float32), epochs=1, batch_size=8, verbose=0).history
    assert history[stacking.BRANCH_ACCURACY] and history["adversarial_loss"][0] > 0
    # The epoch's checkpoint: the head's second input (the n-gram ids) once left the trainer and classifier unsaveable.
    models.save_model(trainer, tmp_path / "last.keras")
    loaded = models.load_model(tmp_path / "last.keras")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), trainer.predict(inputs, verbose=0), atol=1e-6)
    classifier.get_config()
    vectors = trainer.embedding(inputs["token_ids"])
    head = trainer.head([vectors, trainer.embedding.compute_mask(inputs["token_ids"]), tf.constant(inputs["ngram_ids"])], training=False)
    np.testing.assert_allclose(head, trainer.predict(inputs, verbose=0), atol=1e-6)


@pytest.mark.parametrize("overrides, match", [
    (dict(model="wide", ngram_vocab_size=30, adversarial=0.02), "no word vectors"),
    (dict(adversarial=-0.1), r"in \[0, 1\]"),
    (dict(adversarial=0.02, distribute="multi_worker"), "multi_worker"),
])
def test_impossible_settings_are_refused(overrides, match):
    model = overrides.pop("model", "lstm")
    with pytest.raises(ConfigError, match=match):
        make_config(model, **overrides)


def test_a_run_trains_adversarially_and_records_it(tiny_config, tmp_path):
    config = tiny_config("lstm", epochs=3, learning_rate=0.02, embedding_dropout=0.0, dropout=0.0, adversarial=0.05)
    run_dir = experiment.run(config, tmp_path / "run")
    history = (run_dir / "history.csv").read_text().splitlines()
    assert "adversarial_loss" in history[0] and len(history) == 4
    metrics = artifacts.read_json(run_dir / "metrics.json")
    assert metrics["validation"]["accuracy"] > 0.6
    # The exported model is the classifier alone: the wrapper is training's, not prediction's.
    assert not isinstance(keras.saving.load_model(run_dir / "model.keras"), adversarial.AdversarialModel)
