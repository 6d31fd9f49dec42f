"""Scoring models on reviews, report folders, and re-evaluating runs and exported models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentiment import artifacts, evaluation, prediction


def test_score_in_length_order_restores_order():
    texts = ["ccc", "a", "bb", "dddd"]
    probs = evaluation.score_in_length_order(lambda batch: np.array([len(t) / 10 for t in batch]), texts, batch_size=2)
    np.testing.assert_allclose(probs, [0.3, 0.1, 0.2, 0.4])


def test_two_versions_of_the_same_number_get_two_report_folders():
    dirs = evaluation.default_out_dirs(["saved_models/lstm/1", "saved_models/simple_rnn/1"], "test")
    assert dirs == [Path("reports/lstm-1-test"), Path("reports/simple_rnn-1-test")]
    dirs = evaluation.default_out_dirs(["a/lstm/1", "b/lstm/1"], "all", out="x")
    assert len(set(dirs)) == 2 and all(d.parent == Path("x") for d in dirs)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from conftest import make_reviews, write_csv
    from sentiment import experiment, training
    from sentiment.config import make_config

    tmp = tmp_path_factory.mktemp("reeval")
    data = write_csv(tmp / "r.csv", [(t, y) for t, y in make_reviews(150)])
    common = dict(data=str(data), vocab_size=64, max_len=32, embedding_dim=8, units=8, epochs=2, batch_size=16,
                  val_fraction=0.2, test_fraction=0.2, learning_rate=0.02)
    training.seed_everything(0)
    return [experiment.run(make_config(name, **common), tmp / name) for name in ("simple_rnn", "lstm")]


def test_reevaluate_run_dir_and_exported_model(two_runs, tmp_path):
    from sentiment import export

    original = artifacts.read_json(two_runs[1] / "metrics.json")
    scorer, config, name = prediction.load_scorer(str(two_runs[1]), tmp_path)
    evaluation.reevaluate(scorer, config, name, tmp_path / "run_eval")
    again = artifacts.read_json(tmp_path / "run_eval" / "metrics.json")
    # Same held-out split and the same weights give the same accuracy via raw text as via tf.data.
    assert again["examples"] == original["examples"]
    assert again["accuracy"] == pytest.approx(original["accuracy"])
    export.export_run(two_runs[1], tmp_path / "models")
    scorer, config, name = prediction.load_scorer("lstm", tmp_path / "models")
    evaluation.reevaluate(scorer, config, name, tmp_path / "model_eval", split="all")
    assert artifacts.read_json(tmp_path / "model_eval" / "metrics.json")["examples"] == 150
    assert (tmp_path / "model_eval" / "report.md").exists()
