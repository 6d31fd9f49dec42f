"""Language-model pretraining: the loss is the real next-word cross-entropy, the encoder is reused by hash, resumes, and seeds the classifier."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import CrashAtEpoch, make_reviews, write_csv

from sentiment import artifacts
from sentiment.config import make_config
from sentiment.data import preprocessing
from sentiment.rundir import RunDir
from sentiment.training import experiment, fitting, pretraining


@pytest.fixture
def lm_config(tmp_path):
    """A tiny config for pretraining on 120 generated reviews, encoders kept under tmp_path."""
    data = write_csv(tmp_path / "r.csv", make_reviews(120))
    return make_config("lstm", data=str(data), vocab_size=64, max_len=24, embedding_dim=8, units=8, batch_size=16,
                       val_fraction=0.2, test_fraction=0.2, pretrain_epochs=2, patience=5, lr_decay=1.0,
                       embedding_dropout=0.0, dropout=0.0, pretrain_learning_rate=1e-3, pretrain_batch_size=16,
                       pretrain_dropout=0.0, pretrain_dir=str(tmp_path / "pretrained"))


def texts_and_vocabulary(config):
    splits = preprocessing.load_clean_splits(config)
    vocabulary = preprocessing.learn_vocabulary(splits.train.texts, config)
    return splits, vocabulary


@pytest.mark.parametrize("bidirectional", [False, True])
def test_validation_loss_is_the_full_softmax_next_word_cross_entropy(lm_config, bidirectional):
    config = dataclasses.replace(lm_config, bidirectional=bidirectional, vocab_size=11)
    model = pretraining.build_language_model(config)
    ids = np.array([[3, 5, 7, 2, 0, 0], [4, 4, 9, 10, 6, 1]], np.int32)
    loss = float(model(ids, training=False))
    # The same loss by hand: states → logits over the vocabulary → cross-entropy of the real neighbours.
    states = keras.Model(model.input, model.get_layer("dropout").output)(ids).numpy()
    head = model.get_layer("next_word_loss")
    kernel, bias = (w.numpy() for w in (head.kernel, head.bias))

    def direction_loss(states, targets):
        rows = [(s, t) for s_row, t_row in zip(states, targets) for s, t in zip(s_row, t_row) if t > 0]
        logits = np.stack([s for s, _ in rows]) @ kernel.T + bias
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -np.mean([lp[t] for lp, (_, t) in zip(log_probs, rows)])

    expected = [direction_loss(states[:, :-1, :8], ids[:, 1:])]
    if bidirectional:
        expected.append(direction_loss(states[:, 1:, 8:], ids[:, :-1]))
    assert loss == pytest.approx(np.mean(expected), rel=1e-4)


def test_pretraining_learns_and_is_reused_by_content_hash(lm_config, caplog):
    splits, vocabulary = texts_and_vocabulary(lm_config)
    held_out = splits.validation.texts + splits.test.texts
    record = pretraining.pretrain(lm_config, vocabulary, splits.train.texts, held_out, verbose=0)
    folder = pretraining.encoder_dir(lm_config, record["hash"])
    assert record["encoder"] == str(folder) and pretraining.encoder_path(folder).exists()
    history = fitting.read_history_file(folder / "history.csv")
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]  # it learns the generated reviews' words
    assert record["val_perplexity"] < 64 and record["reviews"] + record["held_out_reviews"] == len(splits.train)
    assert not (folder / "backup").exists()

    with caplog.at_level("INFO"):
        again = pretraining.pretrain(lm_config, vocabulary, splits.train.texts, held_out, verbose=0)
    assert again == record and "reusing the pretrained encoder" in caplog.text
    half = pretraining.pretrain(dataclasses.replace(lm_config, pretrain_fraction=0.5), vocabulary, splits.train.texts, held_out, verbose=0)
    assert half["hash"] != record["hash"] and half["reviews"] + half["held_out_reviews"] == round(len(splits.train) * 0.5)


def test_the_language_model_trains_with_its_own_settings_not_the_classifiers(lm_config, monkeypatch):
    config = dataclasses.replace(lm_config, pretrain_dropout=0.2, pretrain_learning_rate=0.004, pretrain_batch_size=8, pretrain_epochs=1,
                                 lr_decay=0.5)  # the classifier halves its step size; the language model must not
    model = pretraining.compile_language_model(pretraining.build_language_model(config), config)
    assert model.get_layer("embedding_dropout").rate == 0.2 and model.get_layer("dropout").rate == 0.2
    assert float(model.optimizer.learning_rate) == pytest.approx(0.004)
    assert pretraining.pretraining_rules(config).learning_rate_at(3) == pytest.approx(0.004)  # constant, not halved
    batch_sizes = []
    make_train = pretraining.batching.make_train_dataset
    monkeypatch.setattr(pretraining.batching, "make_train_dataset",
                        lambda split, pre, cfg, *a, **k: batch_sizes.append(cfg.batch_size) or make_train(split, pre, cfg, *a, **k))
    splits, vocabulary = texts_and_vocabulary(config)
    pretraining.pretrain(config, vocabulary, splits.train.texts, [], verbose=0)
    assert batch_sizes == [8]
    # The classifier's optimizer, batch and dropout settings do not make a new encoder; the language model's do.
    base = pretraining.content_hash(config, ["a"], ["b"])
    for change in ({"learning_rate": 0.5}, {"batch_size": 3}, {"dropout": 0.3}, {"embedding_dropout": 0.3}, {"lr_decay": 0.5}, {"epochs": 9}):
        assert pretraining.content_hash(dataclasses.replace(config, **change), ["a"], ["b"]) == base, change
    for change in ({"pretrain_learning_rate": 0.5}, {"pretrain_batch_size": 3}, {"pretrain_dropout": 0.3}):
        assert pretraining.content_hash(dataclasses.replace(config, **change), ["a"], ["b"]) != base, change


def test_killed_pretraining_resumes_where_it_stopped(lm_config, caplog):
    splits, vocabulary = texts_and_vocabulary(lm_config)
    with pytest.raises(KeyboardInterrupt):
        pretraining.pretrain(lm_config, vocabulary, splits.train.texts, [], verbose=0, extra_callbacks=[CrashAtEpoch(1)])
    folders = list(Path(lm_config.pretrain_dir).iterdir())
    assert len(folders) == 1 and fitting.epochs_backed_up(RunDir(folders[0])) == 1
    assert not pretraining.encoder_path(folders[0]).exists()
    with caplog.at_level("INFO"):
        record = pretraining.pretrain(lm_config, vocabulary, splits.train.texts, [], verbose=0)
    assert "resuming" in caplog.text and record["epochs"] == 2 and record["encoder"] == str(folders[0])


def test_held_out_reviews_never_reach_pretraining(lm_config, tmp_path):
    splits, vocabulary = texts_and_vocabulary(lm_config)
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(["an unlabelled line about a film", splits.test.texts[0], "", splits.validation.texts[0]]) + "\n")
    config = dataclasses.replace(lm_config, unlabelled=str(extra))
    from sentiment.data import unlabelled

    texts = unlabelled.load_unlabelled(config, splits.train.texts, splits.validation.texts + splits.test.texts)
    assert texts == splits.train.texts + ["an unlabelled line about a film"]


@pytest.mark.slow
def test_classifier_starts_from_the_encoder_and_the_report_says_so(lm_config, tmp_path):
    config = dataclasses.replace(lm_config, readout="max", epochs=1, pretrain_epochs=1, max_len=16)
    fitting.seed_everything(0)
    run = experiment.run(config, tmp_path / "run", verbose=0)
    record = artifacts.read_json(run / "metrics.json")["training"]["pretraining"]
    assert record["epochs"] == 1 and pretraining.encoder_path(Path(record["encoder"])).exists()

    classifier = experiment.build_classifier(config, None, record)
    with np.load(pretraining.encoder_path(Path(record["encoder"]))) as encoder:
        for name in pretraining.ENCODER_LAYERS:
            for i, weight in enumerate(classifier.get_layer(name).get_weights()):
                np.testing.assert_array_equal(weight, encoder[f"{name}/{i}"])

    # --pretrain-transfer embedding: the same encoder (no new hash), the word vectors only; the recurrent layer starts fresh.
    words_only = dataclasses.replace(config, pretrain_transfer="embedding")
    assert pretraining.content_hash(words_only, ["a"], ["b"]) == pretraining.content_hash(config, ["a"], ["b"])
    fitting.seed_everything(1)
    classifier = experiment.build_classifier(words_only, None, record)
    fitting.seed_everything(1)
    fresh = experiment.build_classifier(words_only, None, None)
    with np.load(pretraining.encoder_path(Path(record["encoder"]))) as encoder:
        np.testing.assert_array_equal(classifier.get_layer("embedding").get_weights()[0], encoder["embedding/0"])
        assert not np.array_equal(classifier.get_layer("recurrent").get_weights()[0], encoder["recurrent/0"])
    for started, untouched in zip(classifier.get_layer("recurrent").get_weights(), fresh.get_layer("recurrent").get_weights()):
        np.testing.assert_array_equal(started, untouched)  # the recurrent layer as a fresh build with the same seed has it


def test_a_large_vocabulary_trains_on_a_sampled_softmax(lm_config):
    # Above 2 × SAMPLED_WORDS words the training loss is sampled; the full-softmax validation loss must still fall.
    config = dataclasses.replace(lm_config, vocab_size=2 * pretraining.SAMPLED_WORDS + 100, pretrain_learning_rate=0.01)
    model = pretraining.compile_language_model(pretraining.build_language_model(config), config)
    rng = np.random.default_rng(0)
    ids = np.tile(rng.integers(2, 40, size=(1, 12)), (32, 1)).astype(np.int32)  # one sentence, over and over
    before = float(model(ids, training=False))
    model.fit(ids, np.zeros(32, np.float32), batch_size=16, epochs=8, verbose=0)
    assert np.isfinite(before) and float(model(ids, training=False)) < before - 1.0


def test_training_seeds_on_one_split_share_one_encoder_and_train_as_if_it_were_reused(lm_config, tmp_path):
    config = dataclasses.replace(lm_config, epochs=1, pretrain_epochs=1, max_len=16, split_seed=7)
    runs = {}
    for name, seed in (("made", 1), ("reused", 1), ("other_seed", 2)):
        fitting.seed_everything(seed)
        run = experiment.run(dataclasses.replace(config, seed=seed), tmp_path / name, verbose=0)
        runs[name] = artifacts.read_json(run / "metrics.json")
    encoders = {name: m["training"]["pretraining"]["encoder"] for name, m in runs.items()}
    assert len(set(encoders.values())) == 1  # seed 2 reuses seed 1's encoder: it is the split's
    assert runs["made"]["training"]["pretraining"]["settings"]["seed"] == 7
    # The run that made the encoder ends exactly as the run that found it made.
    assert runs["made"]["accuracy"] == runs["reused"]["accuracy"] and runs["made"]["loss"] == runs["reused"]["loss"]
