"""Distillation: an anchor labels the unlabelled reviews (never a held-out one), and training reads them as soft labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_reviews

from sentiment import models
from sentiment.config import TEACHER_CHOICES, make_config
from sentiment.data import preprocessing
from sentiment.errors import ConfigError, DataError, ModelError
from sentiment.evaluation import anchors
from sentiment.training import experiment, teacher


def unlabelled_file(tmp_path, texts):
    path = tmp_path / "unlabelled.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return str(path)


def test_every_teacher_is_an_anchor():
    assert set(TEACHER_CHOICES[1:]) == set(anchors.ANCHORS)
    with pytest.raises(ConfigError, match="teacher=.gpt."):
        make_config("lstm", teacher="gpt")


def test_the_teacher_labels_unlabelled_reviews_softly_and_never_a_held_out_one(csv_path, tmp_path):
    config = make_config("lstm", data=str(csv_path), val_fraction=0.2, test_fraction=0.2)
    splits = preprocessing.load_clean_splits(config)
    held_out = splits.validation.texts + splits.test.texts
    fresh = [text for text, _ in make_reviews(40, seed=7)]  # label 1 on odd rows, from the same sentiment words
    config = make_config("lstm", data=str(csv_path), val_fraction=0.2, test_fraction=0.2, teacher="nbsvm_bi",
                         unlabelled=unlabelled_file(tmp_path, fresh + held_out[:3] + ["<br />"]))
    trained, record = teacher.with_teacher_labels(config, splits.train, splits.validation, held_out)
    assert trained.texts[: len(splits.train)] == splits.train.texts
    assert trained.texts[len(splits.train):] == fresh  # held-out repeats and wordless lines dropped
    assert trained.labels.dtype == np.float32
    np.testing.assert_array_equal(trained.labels[: len(splits.train)], splits.train.labels)
    soft = trained.labels[len(splits.train):]
    assert ((soft > 0) & (soft < 1)).all()  # probabilities, not 0/1
    assert ((soft >= 0.5) == (np.arange(40) % 2 == 1)).mean() >= 0.9  # the teacher reads sentiment
    assert record["anchor"] == "nbsvm_bi" and record["reviews"] == 40 and record["validation_accuracy"] >= 0.8


def test_a_teacher_without_unlabelled_reviews_is_a_data_error(csv_path):
    config = make_config("lstm", data=str(csv_path), teacher="nbsvm_bi")
    splits = preprocessing.load_clean_splits(config)
    with pytest.raises(DataError, match="has none: give some with --unlabelled"):
        teacher.with_teacher_labels(config, splits.train, splits.validation, [])


def test_accuracy_reads_a_soft_label_as_the_side_it_leans_to():
    labels = np.array([0.9, 0.2, 1.0, 0.0], np.float32)
    probabilities = np.array([[0.7], [0.6], [0.9], [0.1]], np.float32)
    assert float(np.mean(models.label_accuracy(labels, probabilities))) == pytest.approx(0.75)


def test_a_run_with_a_teacher_trains_on_its_labels_and_records_it(tiny_config, tmp_path):
    fresh = [text for text, _ in make_reviews(60, seed=5)]
    config = tiny_config("lstm", teacher="tfidf_logreg", unlabelled=unlabelled_file(tmp_path, fresh), epochs=1)
    run = experiment.run(config, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["teacher"]["reviews"] == 60
    assert metrics["training"]["teacher"]["anchor"] == "tfidf_logreg"
    # Throughput counts the 120 training reviews and the teacher's 60.
    assert metrics["training"]["reviews_per_second"] * metrics["training"]["train_seconds"] == pytest.approx(180, rel=0.01)


def test_a_teacher_needs_the_reviews_in_memory(tiny_config, tmp_path):
    config = tiny_config("lstm", teacher="nbsvm_bi", stream="on")
    with pytest.raises(ConfigError, match="--teacher needs the reviews in memory"):
        experiment.run(config, tmp_path / "run")


def test_a_finished_run_teaches_the_next_run_on_its_split(tiny_config, tmp_path):
    """Iterated teaching: a trained model labels the unlabelled reviews, with its calibrated probabilities."""
    fresh = [text for text, _ in make_reviews(60, seed=5)]
    first = experiment.run(tiny_config("lstm", epochs=1, learning_rate=0.02), tmp_path / "first")
    config = tiny_config("lstm", teacher=str(first), unlabelled=unlabelled_file(tmp_path, fresh), epochs=1)
    splits = preprocessing.load_clean_splits(config)
    trained, record = teacher.with_teacher_labels(config, splits.train, splits.validation, splits.validation.texts + splits.test.texts)
    expected = experiment_scores(first, fresh)
    np.testing.assert_allclose(trained.labels[len(splits.train):], expected, atol=1e-5)
    assert record["anchor"] == str(first) and record["reviews"] == 60


def experiment_scores(run, texts):
    """The run's calibrated P(positive) of ``texts``, as its export gives them."""
    from sentiment.evaluation import calibration

    metrics = json.loads((run / "metrics.json").read_text())
    raw = models.load_model(run / "model.keras").predict(np.array(texts, dtype=object), verbose=0).reshape(-1)
    return calibration.apply_temperature(raw, metrics["calibration"]["temperature"])


def test_a_teacher_trained_on_another_split_is_refused(tiny_config, tmp_path):
    """A teacher that trained on this run's test reviews would leak them into its labels: a one-line error before any work."""
    first = experiment.run(tiny_config("lstm", epochs=1, seed=1), tmp_path / "first")
    config = tiny_config("lstm", seed=2, teacher=str(first), unlabelled=unlabelled_file(tmp_path, ["a fine film"]))
    splits = preprocessing.load_clean_splits(config)
    with pytest.raises(ConfigError, match=r"trained or chose its settings on \d+ of this run's validation and test reviews"):
        teacher.with_teacher_labels(config, splits.train, splits.validation, splits.validation.texts + splits.test.texts)
    with pytest.raises(ModelError, match="not a finished run"):
        teacher.with_teacher_labels(tiny_config("lstm", teacher=str(tmp_path / "none"), unlabelled=config.unlabelled),
                                    splits.train, splits.validation, [])


def test_a_teacher_refitted_on_the_validation_reviews_is_refused(tiny_config, tmp_path):
    """--refit trains the final model on the validation reviews too: on the same split, it has seen this run's validation reviews."""
    first = experiment.run(tiny_config("lstm", epochs=1, refit=True), tmp_path / "first")
    config = tiny_config("lstm", teacher=str(first), unlabelled=unlabelled_file(tmp_path, ["a fine film"]))
    splits = preprocessing.load_clean_splits(config)
    with pytest.raises(ConfigError, match="trained or chose its settings on"):
        teacher.with_teacher_labels(config, splits.train, splits.validation, splits.validation.texts + splits.test.texts)
