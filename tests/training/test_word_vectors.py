"""Word vectors: learned from training + unlabelled text only, reused by content hash, resumed after a kill, loaded as the embedding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_reviews, write_csv

from sentiment import artifacts, models
from sentiment.config import make_config
from sentiment.data import preprocessing
from sentiment.errors import ConfigError
from sentiment.training import experiment, word_vectors


@pytest.fixture
def wv_config(tmp_path):
    """A tiny config on 200 generated reviews plus an unlabelled file, vectors kept under tmp_path."""
    data = write_csv(tmp_path / "r.csv", make_reviews(200))
    extra = write_csv(tmp_path / "unsup.csv", [(text, "") for text, _ in make_reviews(100, seed=1)])
    return make_config("lstm", data=str(data), unlabelled=str(extra), vocab_size=40, max_len=24, embedding_dim=8, units=8,
                       val_fraction=0.2, test_fraction=0.2, word_vector_epochs=2, pretrain_dir=str(tmp_path / "pretrained"))


def learn(config):
    splits = preprocessing.load_clean_splits(config)
    vocabulary = preprocessing.learn_vocabulary(splits.train.texts, config)
    held_out = splits.validation.texts + splits.test.texts
    return word_vectors.learn(config, splits.train.texts, held_out), vocabulary, splits


def test_vectors_are_learned_for_the_vocabulary_and_reused_by_hash(wv_config, caplog):
    record, vocabulary, splits = learn(wv_config)
    matrix = word_vectors.embedding_matrix(record, vocabulary, wv_config)
    assert matrix.shape == (40, 8) and matrix.dtype == np.float32
    words = (word_vectors.vectors_dir(wv_config, record["hash"]) / "words.txt").read_text().split()
    vectors = np.load(f"{record['vectors']}/vectors.npy")
    # Every word of the generated reviews is frequent: all but padding and [UNK] get their learned vector.
    assert set(vocabulary[2:]) <= set(words)
    np.testing.assert_array_equal(matrix[vocabulary.index("great")], vectors[words.index("great")])
    assert record["reviews"] == len(splits.train) + 100  # the unlabelled file's reviews, and no validation or test review
    # Words used alike end up alike: two positive words are closer to each other than to a negative one.
    index = {w: i for i, w in enumerate(vocabulary)}
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    assert unit[index["great"]] @ unit[index["wonderful"]] > unit[index["great"]] @ unit[index["awful"]]
    assert not list((word_vectors.vectors_dir(wv_config, record["hash"]) / "state").glob("*.npz"))

    with caplog.at_level("INFO"):
        again, _, _ = learn(wv_config)
    assert again == record and "reusing the word vectors" in caplog.text
    other, _, _ = learn(dataclasses.replace(wv_config, word_vector_epochs=3))
    assert other["hash"] != record["hash"]
    # Other vocabulary sizes and training seeds on the same split share the vectors.
    for same in (dataclasses.replace(wv_config, vocab_size=30), dataclasses.replace(wv_config, seed=7, split_seed=wv_config.seed)):
        assert learn(same)[0]["hash"] == record["hash"]


def test_a_killed_training_resumes_after_its_last_finished_epoch(wv_config, monkeypatch, caplog):
    saved = word_vectors.save_state

    def save_then_die(model, folder, epochs_done):
        saved(model, folder, epochs_done)
        raise KeyboardInterrupt  # killed once the first epoch is safely on disk

    monkeypatch.setattr(word_vectors, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        learn(wv_config)
    monkeypatch.setattr(word_vectors, "save_state", saved)
    with caplog.at_level("INFO"):
        record, _, _ = learn(wv_config)
    assert "(1 done before)" in caplog.text and "epoch 2/2 done" in caplog.text and "epoch 1/2 done" not in caplog.text
    assert record["corpus_vocabulary"] > 0
    # ... and ends with the vectors an uninterrupted run learns.
    whole, _, _ = learn(dataclasses.replace(wv_config, pretrain_dir=wv_config.pretrain_dir + "-whole"))
    np.testing.assert_array_equal(np.load(f"{record['vectors']}/vectors.npy"), np.load(f"{whole['vectors']}/vectors.npy"))


def test_the_same_text_and_settings_give_the_same_vectors_every_time(wv_config, tmp_path):
    """Reproducible: no race between threads on the shared vectors."""
    # Text enough for several of gensim's 10,000-word jobs, so threads would race.
    many = write_csv(tmp_path / "many.csv", [(text, "") for text, _ in make_reviews(4000, seed=2)])
    records = [learn(dataclasses.replace(wv_config, unlabelled=str(many), pretrain_dir=str(tmp_path / f"p{i}")))[0] for i in range(2)]
    np.testing.assert_array_equal(*(np.load(f"{r['vectors']}/vectors.npy") for r in records))


@pytest.mark.slow  # end to end, tens of seconds: with the slow tests (CI runs both)
def test_a_run_starts_its_embedding_from_the_vectors(wv_config, tmp_path):
    run = experiment.run(dataclasses.replace(wv_config, epochs=1), tmp_path / "run", verbose=0)
    record = artifacts.read_json(run / "metrics.json")["training"]["word_vectors"]
    matrix = word_vectors.embedding_matrix(record, preprocessing.load_vocabulary(run / "vocabulary.txt"), wv_config)
    trained = models.load_model(run / "model.keras").get_layer(wv_config.model).get_layer("embedding").get_weights()[0]
    rows = slice(2, len(preprocessing.load_vocabulary(run / "vocabulary.txt")))
    # One epoch of fine-tuning moves the vectors a little: the trained embedding is still the learned one.
    assert np.corrcoef(trained[rows].ravel(), matrix[rows].ravel())[0, 1] > 0.9


def test_the_wide_model_has_no_embedding_to_start():
    with pytest.raises(ConfigError, match="word_vector_epochs"):
        make_config("wide", word_vector_epochs=2)
