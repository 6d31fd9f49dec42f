"""Comparing two tiny runs against the cheap anchors (TF-IDF + LR, NBSVM-bi, fastText)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment import artifacts
from sentiment.errors import ModelError
from sentiment.evaluation import anchors, baseline, comparison


def test_comparison_of_two_runs_with_baseline(two_runs, tmp_path):
    md = comparison.compare(two_runs, tmp_path)
    rows = artifacts.read_json(tmp_path / "comparison.json")["rows"]
    assert [r["model"] for r in rows] == ["simple_rnn", "lstm", "tfidf_logreg", "nbsvm_bi", "fasttext"]
    assert all({"accuracy", "f1", "roc_auc", "train_time_s", "tokens_per_second", "parameters", "acc_>400"} <= set(r) for r in rows)
    assert rows[1]["parameters"] > rows[0]["parameters"]  # LSTM has four gates' worth of weights
    for row in rows[:2]:  # each model against each anchor on the same test reviews
        for anchor in anchors.ANCHORS:
            pair = row[f"vs_{anchor}"]
            assert 0 < pair["mcnemar_p"] <= 1 and pair["anchor"] == anchor and pair["only_model_right"] >= 0
    assert not any(k.startswith("vs_") for r in rows[2:] for k in r) and all(r["accuracy_ci95"] for r in rows)
    text = md.read_text()
    assert "| simple_rnn |" in text and "| tfidf_logreg |" in text and "| nbsvm_bi |" in text and "comparison.png" in text
    assert ", p=" in text  # the paired cells
    assert rows[1]["vs_first"]["anchor"] == "simple_rnn" and "vs_first" not in rows[0]
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_comparison_refuses_different_splits(two_runs, tmp_path):
    import dataclasses

    from sentiment.config import Config

    config = dataclasses.replace(Config.load(two_runs[1] / "config.json"), seed=99)
    other = tmp_path / "other"
    other.mkdir()
    artifacts.write_json(other / "config.json", config.to_dict())
    artifacts.write_json(other / "metrics.json", artifacts.read_json(two_runs[1] / "metrics.json"))
    (other / "model.keras").write_bytes((two_runs[1] / "model.keras").read_bytes())
    with pytest.raises(ModelError, match="differ in data_seed"):
        comparison.compare([two_runs[0], other], tmp_path / "out", with_baseline=False)


def test_table_cells():
    assert comparison.format_cell("accuracy", 0.87654) == "0.8765"
    assert comparison.format_cell("train_time_s", 8.78) == "9"
    assert comparison.format_cell("tokens_per_second", 193401.2) == "193,401"
    assert comparison.format_cell("epochs", None) == ""


def test_summary_over_seeds_gives_mean_and_std(two_runs, tmp_path):
    first = comparison.compare(two_runs, tmp_path / "seed-a").parent
    second = tmp_path / "seed-b"
    second.mkdir()
    table = artifacts.read_json(first / "comparison.json")
    table["rows"][1]["accuracy"] += 0.1  # as if the lstm had done better on another seed
    artifacts.write_json(second / "comparison.json", table)
    with pytest.raises(ModelError, match="share a seed"):
        comparison.summarize([first, second], tmp_path / "summary")
    table["training_seeds"] = [table["seed"] + 100]  # another training seed on the same split: a distinct comparison
    artifacts.write_json(second / "comparison.json", table)
    comparison.summarize([first, second], tmp_path / "summary")
    rows = {r["model"]: r for r in artifacts.read_json(tmp_path / "summary" / "summary.json")["rows"]}
    assert set(rows) == {"simple_rnn", "lstm", "tfidf_logreg", "nbsvm_bi", "fasttext"} and rows["lstm"]["runs"] == 2
    lstm_accuracy = table["rows"][1]["accuracy"]
    assert rows["lstm"]["accuracy"]["mean"] == pytest.approx(lstm_accuracy - 0.05)
    assert rows["lstm"]["accuracy"]["std"] == pytest.approx(0.1 / 2**0.5)
    assert rows["simple_rnn"]["accuracy"]["std"] == 0 and "/2" in rows["lstm"]["beats_nbsvm_bi"]
    assert "± " in (tmp_path / "summary" / "summary.md").read_text()


def test_a_refit_run_is_paired_with_anchors_trained_on_the_same_reviews(two_runs, tmp_path):
    import dataclasses
    import shutil

    from sentiment.config import Config

    refit = tmp_path / "refit_run"
    shutil.copytree(two_runs[1], refit)
    config = dataclasses.replace(Config.load(refit / "config.json"), refit=True)
    artifacts.write_json(refit / "config.json", config.to_dict())
    comparison.compare([two_runs[0], refit], tmp_path / "out")
    rows = {r["model"]: r for r in artifacts.read_json(tmp_path / "out" / "comparison.json")["rows"]}
    assert rows["simple_rnn"]["vs_tfidf_logreg"]["anchor"] == baseline.BASELINE
    assert rows["lstm"]["vs_tfidf_logreg"]["anchor"] == baseline.BASELINE_REFIT
    assert rows["lstm"]["vs_nbsvm_bi"]["anchor"] == "nbsvm_bi_refit"
    assert rows[baseline.BASELINE_REFIT]["val_accuracy"] is None  # it trained on the validation reviews


def test_two_runs_of_one_model_are_named_by_run_dir_less_their_seed_suffix_so_seeds_summarize_together():
    from sentiment.config import make_config

    configs = [make_config("wide_lstm", seed=43), make_config("wide_lstm", seed=43, epochs=1), make_config("wide", seed=43)]
    assert comparison.run_label(Path("runs/wide_lstm_v2-s43"), configs[0], configs) == "wide_lstm (wide_lstm_v2)"
    assert comparison.run_label(Path("runs/wide_lstm_1epoch-s43"), configs[1], configs) == "wide_lstm (wide_lstm_1epoch)"
    assert comparison.run_label(Path("runs/wide-s43"), configs[2], configs) == "wide"  # the only run of its model
    assert comparison.run_label(Path("runs/a-s42"), configs[0], configs) == "wide_lstm (a-s42)"  # not its own seed: kept


def test_runs_that_would_share_a_row_name_are_refused(two_runs, tmp_path):
    import shutil

    from sentiment.errors import ConfigError
    from sentiment.rundir import RunDir

    seed = RunDir(two_runs[1]).load_config().seed
    twins = [tmp_path / "lstm-run", tmp_path / f"lstm-run-s{seed}"]  # both "lstm (lstm-run)" once the seed suffix goes
    for twin in twins:
        shutil.copytree(two_runs[1], twin)
    with pytest.raises(ConfigError, match="share a row name"):
        comparison.compare(twins, tmp_path / "out", with_baseline=False)


def test_training_seeds_on_one_split_are_comparable():
    from sentiment.config import make_config

    base = make_config("lstm", seed=42)
    comparison.check_same_split([base, make_config("lstm", seed=43, split_seed=42), make_config("lstm", seed=7, split_seed=42)])
    with pytest.raises(ModelError, match="differ in data_seed"):
        comparison.check_same_split([base, make_config("lstm", seed=43)])
