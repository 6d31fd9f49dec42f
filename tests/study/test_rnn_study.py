"""The RNN-vs-LSTM study: gradient flow shapes, length buckets with intervals, the report and its figures, the entry point."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_entry

from sentiment import artifacts
from sentiment.rundir import RunDir
from sentiment.study import probes, rnn_study
from sentiment.training import fitting


def test_gradient_flow_measures_every_step(run_dir):
    flow = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4)["lstm"]
    for stage in ("untrained", "trained"):
        assert len(flow[stage]) == 8
        assert all(np.isfinite(v) and v > 0 for v in flow[stage])
    assert flow["reviews"] == 4


@pytest.mark.parametrize("readout, bidirectional", [("last", False), ("mean", False), ("max", True), ("max_mean", True)])
def test_the_gradient_path_is_the_model_itself_for_every_readout(readout, bidirectional):
    """From the embedding onward, the study's forward pass gives the classifier's own probabilities."""
    from sentiment import models
    from sentiment.config import make_config

    config = make_config("lstm", vocab_size=50, max_len=12, embedding_dim=8, units=4, readout=readout, bidirectional=bidirectional)
    model = models.build_model(config)
    ids = np.random.default_rng(0).integers(2, 50, (3, 12)).astype(np.int32)
    expected = model(ids, training=False)
    embedded = model.get_layer("embedding")(ids)
    got = rnn_study.forward_from_embeddings(model, embedded, np.ones_like(ids, dtype=bool))
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_gradient_flow_seeds_only_through_the_entry_points_function(run_dir, monkeypatch):
    """Library code leaves the process's random state alone; study.py's reseed makes each measurement repeat exactly."""
    import keras

    calls = []
    monkeypatch.setattr(keras.utils, "set_random_seed", calls.append)
    rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4)
    assert calls == []
    monkeypatch.undo()
    seeds = []

    def reseed(seed: int) -> None:
        seeds.append(seed)
        fitting.seed_everything(seed)

    first = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4, reseed=reseed)["lstm"]
    second = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4, reseed=reseed)["lstm"]
    assert first["untrained"] == second["untrained"]  # the same untrained weights, from the run's own seed
    assert seeds == [RunDir(run_dir).load_config().seed] * 2


def test_length_comparison_gives_intervals_per_bucket_and_pairs_runs_on_the_same_reviews(run_dir):
    comparison = rnn_study.length_comparison({"a": run_dir, "b": run_dir})
    rows = comparison["runs"]["a"]
    assert [r["bucket"] for r in rows] == ["1-100", "101-200", "201-400", ">400", "all"]
    total = rows[-1]
    assert total["count"] == sum(r["count"] for r in rows[:-1]) and total["ci95"][0] <= total["accuracy"] <= total["ci95"][1]
    assert total["accuracy"] == pytest.approx(artifacts.read_json(RunDir(run_dir).metrics)["accuracy"])
    same = comparison["paired"]["b"][-1]
    assert comparison["reference"] == "a" and same["difference"] == 0 and same["ci95"] == [0, 0] and same["mcnemar_p"] == 1


def fake_cell(length: int, scores: list[float], solved: list[bool]) -> dict:
    """One probe cell as run_grid writes it."""
    return {"length": length, "score": scores, "solved": solved, "steps": [50] * len(scores), "seconds": [1.0] * len(scores)}


def fake_grid(task: str, metric: str, lengths: list[int]) -> dict:
    """A two-model grid over three seeds: lstm solves everything, simple_rnn only the shortest length on 2 of 3 seeds."""
    good, bad = ([0.99] * 3, [0.5] * 3) if metric == "accuracy" else ([0.001] * 3, [0.17] * 3)
    return {"task": task, "recipe": "probe", "metric": metric, "rule": "rule", "trivial": 0.5, "budget": 600, "describe": "d",
            "lengths": lengths, "seeds": [0, 1, 2], "describe_recipe": "r",
            "cells": {"simple_rnn": [fake_cell(lengths[0], good, [True, True, False])] + [fake_cell(n, bad, [False] * 3) for n in lengths[1:]],
                      "lstm": [fake_cell(n, good, [True] * 3) for n in lengths]}}


def fake_study(run_dir) -> dict:
    """study.json's content with made-up numbers and a real (tiny) run's length buckets."""
    flow = {"simple_rnn": {"untrained": [1.0, 0.1, 0.01], "trained": [1.0, 0.5, 0.001]},
            "lstm": {"untrained": [1.0, 0.9, 0.8], "trained": [1.0, 0.7, 0.6]}}
    return {"seeds": [0, 1, 2], "seconds": {"total": 120.0}, "gradient_flow": flow, "gradient_far": 2,
            "probes": {"first_token": fake_grid("first_token", "accuracy", [10, 50]), "adding": fake_grid("adding", "MSE", [50, 100])},
            "recipes": {r: {**fake_grid("first_token", "accuracy", [100]), "describe_recipe": r} for r in ("probe", "project")},
            "length_buckets": rnn_study.length_comparison({"simple_rnn": run_dir, "lstm": run_dir})}


def test_study_md_and_figures_come_from_study_json(run_dir, tmp_path):
    artifacts.write_json(tmp_path / "study.json", fake_study(run_dir))
    text = rnn_study.render_saved_study(tmp_path).read_text(encoding="utf-8")
    assert "| simple_rnn | 0.01 | 0.001 |" in text and "| lstm | 0.8 | 0.6 |" in text
    assert "| simple_rnn | 2/3 (0.990) | 0/3 (0.500) |" in text and "| lstm | 3/3 (0.001) | 3/3 (0.001) |" in text
    for task, longest in (("first_token", 50), ("adding", 100)):  # favoured, then each model's longest N solved by every seed
        assert f"| {task} | {probes.TASKS[task].demands} | lstm | none | {longest} |" in text
    assert "took 2 minutes" in text
    assert "+0.000 (+0.000 to +0.000); p = 1" in text
    for figure in ("gradient_flow.png", "probes.png", "recipes.png", "length_buckets.png"):
        assert (tmp_path / figure).stat().st_size > 0 and f"({figure})" in text


def test_a_study_of_real_reviews_alone_has_no_synthetic_part(run_dir, tmp_path):
    study = {**fake_study(run_dir), "probes": {}, "recipes": {}}
    artifacts.write_json(tmp_path / "study.json", study)
    text = rnn_study.render_saved_study(tmp_path).read_text(encoding="utf-8")
    assert "## Real reviews by length" in text and "## Gradient flow on real reviews" in text
    assert "Synthetic probes" not in text and not (tmp_path / "probes.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--run", "lstm"], "--run takes NAME=RUN_DIR"),
    (["--run", "a=b", "--seeds", "0"], "--seeds and --workers must be at least 1"),
    ([], "give at least one --run"),
    (["--run", "a=b", "--tasks", "first_token,parity"], "unknown probe task(s) parity"),
])
def test_bad_study_command_lines_are_one_line_errors(argv, message, capsys):
    code, _, err = run_entry("study.py", argv, capsys)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and lines[-1].startswith("error: ") and message in lines[-1], err


@pytest.mark.parametrize("model, overrides", [("wide", {}), ("wide_lstm", {}), ("lstm", {"ngram_vocab_size": 50})])
def test_runs_with_an_n_gram_branch_are_refused(tmp_path, model, overrides):
    from sentiment.config import make_config
    from sentiment.errors import ConfigError

    run = RunDir(tmp_path / model)
    run.path.mkdir()
    artifacts.write_json(run.config, make_config(model, **overrides).to_dict())
    for path in (run.model, run.metrics):  # finished, as far as the study's first check looks
        path.write_text("{}")
    with pytest.raises(ConfigError, match="compares recurrent-only models"):
        rnn_study.run_study({model: run.path}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
