"""Stacked wide and deep: each branch learns on its own loss, the mix is fitted on validation reviews and folded into the graph."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment import artifacts, models
from sentiment.config import make_config
from sentiment.errors import ConfigError
from sentiment.training import experiment, stacking


def tiny_wide_lstm(**overrides):
    return models.build_model(make_config("wide_lstm", vocab_size=20, ngram_vocab_size=30, embedding_dim=4, units=4, **overrides),
                              np.ones(30, np.float32))


def batch(rows: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"token_ids": rng.integers(1, 20, (rows, 7)).astype(np.int32), "ngram_ids": rng.integers(1, 30, (rows, 9)).astype(np.int32)}


def test_the_mix_is_the_logistic_regression_of_labels_on_branch_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20_000, 2)).astype(np.float32)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-(1.5 * logits[:, 0] + 0.5 * logits[:, 1] - 0.3)))).astype(np.int32)
    mix = stacking.fit_mix(labels, logits)
    assert mix["deep_weight"] == pytest.approx(1.5, abs=0.1) and mix["wide_weight"] == pytest.approx(0.5, abs=0.1)
    assert mix["bias"] == pytest.approx(-0.3, abs=0.1)
    assert mix["validation_accuracy"]["stacked"] >= max(mix["validation_accuracy"]["deep"], mix["validation_accuracy"]["wide"])


def test_folding_the_mix_makes_the_classifier_output_it():
    classifier = tiny_wide_lstm()
    branches = stacking.branch_trainer(classifier)
    inputs = batch()
    deep, wide = (np.log(p / (1 - p)) for p in np.asarray(branches(inputs)).T)
    mix = {"deep_weight": 1.7, "wide_weight": 0.4, "bias": -0.2}
    stacking.fold_mix(classifier, mix)
    expected = 1 / (1 + np.exp(-(1.7 * deep + 0.4 * wide - 0.2)))
    np.testing.assert_allclose(np.asarray(classifier(inputs)).reshape(-1), expected, rtol=1e-4, atol=1e-6)


def test_each_branch_output_depends_on_its_own_layers_only():
    classifier = tiny_wide_lstm()
    branches = stacking.branch_trainer(classifier)
    inputs = batch()
    before = np.asarray(branches(inputs))
    kernel, bias = classifier.get_layer("wide_logit").get_weights()
    classifier.get_layer("wide_logit").set_weights([kernel + 1.0, bias + 1.0])
    after = np.asarray(branches(inputs))
    np.testing.assert_array_equal(after[:, 0], before[:, 0])  # the deep branch's own probability: untouched
    assert not np.allclose(after[:, 1], before[:, 1])


def test_a_stacked_run_reports_its_mix_and_classifies(tiny_config, tmp_path):
    config = tiny_config("wide_lstm", ngram_vocab_size=300, epochs=2, learning_rate=0.02, branches="stacked")
    run = experiment.run(config, tmp_path / "run", verbose=0)
    metrics = artifacts.read_json(run / "metrics.json")
    mix = metrics["training"]["stacking"]
    assert set(mix) == {"deep_weight", "wide_weight", "bias", "validation_accuracy"}
    # The saved model is the fitted mix: its validation accuracy is the one the regression reached on those reviews.
    assert metrics["validation"]["accuracy"] == pytest.approx(mix["validation_accuracy"]["stacked"])
    assert metrics["accuracy"] > 0.6


@pytest.mark.parametrize("model, overrides", [("lstm", {}), ("wide", {}), ("wide_lstm", {"refit": True})])
def test_stacking_needs_two_branches_and_the_validation_reviews(model, overrides):
    with pytest.raises(ConfigError, match="branches|refit"):
        make_config(model, branches="stacked", **overrides)


def test_branch_accuracy_reads_a_soft_label_as_the_side_it_leans_to():
    labels = np.array([0.9, 0.2, 1.0, 0.0], np.float32)  # a teacher's probabilities, then gold labels
    probabilities = np.array([[0.7, 0.4], [0.6, 0.1], [0.9, 0.8], [0.1, 0.2]], np.float32)  # (deep, wide) per review
    np.testing.assert_allclose(stacking.branch_accuracy(labels, probabilities), [0.5, 0.5, 1.0, 1.0])
