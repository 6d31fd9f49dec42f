"""Scoring models on reviews, report folders, and re-evaluating runs and exported models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentiment import artifacts
from sentiment.errors import DataError
from sentiment.evaluation import scoring
from sentiment.export import prediction


def test_score_in_length_order_restores_order():
    texts = ["ccc", "a", "bb", "dddd"]
    probs = scoring.score_in_length_order(lambda batch: np.array([len(t) / 10 for t in batch]), texts, batch_size=2)
    np.testing.assert_allclose(probs, [0.3, 0.1, 0.2, 0.4])


def test_two_versions_of_the_same_number_get_two_report_folders():
    dirs = scoring.default_out_dirs(["saved_models/lstm/1", "saved_models/simple_rnn/1"], "test")
    assert dirs == [Path("reports/lstm-1-test"), Path("reports/simple_rnn-1-test")]
    dirs = scoring.default_out_dirs(["a/lstm/1", "b/lstm/1"], "all", out="x")
    assert len(set(dirs)) == 2 and all(d.parent == Path("x") for d in dirs)


def test_reevaluate_run_dir_and_exported_model(two_runs, tmp_path):
    from sentiment.export import savedmodel

    original = artifacts.read_json(two_runs[1] / "metrics.json")
    scorer, config, name, _ = prediction.load_scorer(str(two_runs[1]), tmp_path)
    scoring.reevaluate(scorer, config, name, tmp_path / "run_eval")
    again = artifacts.read_json(tmp_path / "run_eval" / "metrics.json")
    # Same held-out split and the same weights give the same accuracy via raw text as via tf.data.
    assert again["examples"] == original["examples"]
    assert again["accuracy"] == pytest.approx(original["accuracy"])
    assert again["ece"] == pytest.approx(original["ece"], abs=1e-4)  # calibrated as the run was
    savedmodel.export_run(two_runs[1], tmp_path / "models")
    scorer, config, name, _ = prediction.load_scorer("lstm", tmp_path / "models")
    with pytest.raises(DataError, match="was trained on r.csv, which is not here: give its path with --data"):
        scoring.reevaluate(scorer, config, name, tmp_path / "model_eval", split="all")
    data = artifacts.read_json(two_runs[1] / "config.json")["data"]
    scoring.reevaluate(scorer, config, name, tmp_path / "model_eval", data, split="all")
    assert artifacts.read_json(tmp_path / "model_eval" / "metrics.json")["examples"] == 150
    assert (tmp_path / "model_eval" / "report.md").exists()


def test_training_calibrates_and_evaluate_chooses_thresholds(two_runs, tmp_path):
    """The run's report gives test ECE before and after calibration; evaluate.py --threshold picks one on validation reviews."""
    fitted = artifacts.read_json(two_runs[1] / "metrics.json")["calibration"]
    assert fitted["method"] == "temperature" and fitted["temperature"] > 0 and fitted["threshold"] == 0.5
    assert {"ece_before", "ece_after", "loss_before", "loss_after"} <= set(fitted["test"])
    assert fitted["validation"]["loss_after"] <= fitted["validation"]["loss_before"] + 1e-9  # fitted to lower it there
    assert "| calibration | temperature" in (two_runs[1] / "report.md").read_text()
    scorer, config, name, own = prediction.load_scorer(str(two_runs[1]), tmp_path)
    assert own == 0.5
    scoring.reevaluate(scorer, config, name, tmp_path / "at", threshold="0.9")
    at = artifacts.read_json(tmp_path / "at" / "metrics.json")
    assert at["threshold"] == 0.9 and at["recall"] <= artifacts.read_json(two_runs[1] / "metrics.json")["recall"]
    scoring.reevaluate(scorer, config, name, tmp_path / "f1", threshold="recall=0.9")
    chosen = artifacts.read_json(tmp_path / "f1" / "metrics.json")
    assert chosen["threshold_target"] == "recall=0.9" and 0 < chosen["threshold"] < 1


def test_reports_say_what_moves_the_model_and_why_it_erred(run_dir):
    """On a bag-of-words scorer of the generated reviews, the strongest phrases are its sentiment words; runs report them."""
    from conftest import NEGATIVE, POSITIVE, make_reviews

    from sentiment.data.sources import Split

    def score(texts):
        logits = np.array([sum((w in POSITIVE) - (w in NEGATIVE) for w in t.split()) * 2.0 - 0.3 for t in texts])
        return 1 / (1 + np.exp(-logits))

    rows = make_reviews(60, seed=4)
    reviews = Split([t for t, _ in rows], np.array([y for _, y in rows]))
    reviews.labels[:3] = 1 - reviews.labels[:3]  # three confident mistakes to explain
    explained = scoring.explain_predictions(score, reviews, score(reviews.texts).astype(np.float32), 0.5)
    assert {x["phrase"] for x in explained["strongest"]["positive"]} <= set(POSITIVE)
    assert {x["phrase"] for x in explained["strongest"]["negative"]} <= set(NEGATIVE)
    assert len(explained["mistakes"]) == 3 and all(m["why"]["positive"] or m["why"]["negative"] for m in explained["mistakes"])
    result = artifacts.read_json(run_dir / "metrics.json")  # a real run's report carries its own
    assert len(result["explanations"]["mistakes"]) == len(result["confident_mistakes"])
    text = (run_dir / "report.md").read_text()
    assert "## What moves the model" in text and ("why: " in text or not result["confident_mistakes"])
