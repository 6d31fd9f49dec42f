"""The RNN-vs-LSTM study: probe data, a real check that LSTM learns the probe, gradient flow shapes."""

from __future__ import annotations

import numpy as np

from sentiment import rnn_study, training
from sentiment.rundir import RunDir


def test_probe_data_puts_the_label_in_the_first_token_only():
    x, y = rnn_study.make_probe_data(200, 30, vocab_size=64, seed=1)
    assert x.shape == (200, 31) and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 0], np.where(y == 1, 3, 2))
    assert x[:, 1:].min() > 3 and x[:, 1:].max() < 64  # distractors never repeat the signal
    again, _ = rnn_study.make_probe_data(200, 30, vocab_size=64, seed=1)
    np.testing.assert_array_equal(x, again)


def test_lstm_learns_the_probe_at_small_distance():
    """A real check of the recurrent model: the label is only in the first of 11 tokens."""
    accuracy = rnn_study.run_probe_once("lstm", distance=10, seed=0, n_train=1024, n_test=256, epochs=6,
                                        reseed=training.seed_everything)
    assert accuracy > 0.9


def test_gradient_flow_measures_every_step(run_dir, tmp_path):
    flow = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4)["lstm"]
    for stage in ("untrained", "trained"):
        assert len(flow[stage]) == 8
        assert all(np.isfinite(v) and v > 0 for v in flow[stage])
    assert flow["reviews"] == 4


def test_study_report_renders_measured_numbers():
    flow = {"simple_rnn": {"untrained": [1.0, 0.1, 0.01], "trained": [1.0, 0.5, 0.001]},
            "lstm": {"untrained": [1.0, 0.9, 0.8], "trained": [1.0, 0.7, 0.6]}}
    probe = {"distances": [10, 50], "accuracy": {"lstm": [1.0, 0.98], "simple_rnn": [1.0, 0.51]}, "seconds": {"lstm": 3, "simple_rnn": 2}}
    buckets = {name: [{"bucket": "1-100", "count": 5, "accuracy": 0.8}] for name in ("simple_rnn", "lstm")}
    text = rnn_study.render_study(flow, probe, buckets, far=2)
    assert "| simple_rnn | 0.01 | 0.001 |" in text and "| lstm | 0.8 | 0.6 |" in text
    assert "| simple_rnn | 1.000 | 0.510 | 2 |" in text


def test_the_study_seeds_only_through_the_entry_points_function(run_dir, monkeypatch):
    """Library code leaves the process's random state alone; study.py's reseed makes each measurement repeat exactly."""
    import keras

    calls = []
    monkeypatch.setattr(keras.utils, "set_random_seed", calls.append)
    rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4)
    rnn_study.run_probe_once("simple_rnn", distance=3, seed=7, n_train=64, n_test=32, epochs=1)
    assert calls == []
    monkeypatch.undo()

    seeds = []

    def reseed(seed: int) -> None:
        seeds.append(seed)
        training.seed_everything(seed)

    first = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4, reseed=reseed)["lstm"]
    second = rnn_study.gradient_flow({"lstm": run_dir}, steps=8, size=4, reseed=reseed)["lstm"]
    assert first["untrained"] == second["untrained"]  # the same untrained weights, from the run's own seed
    rnn_study.run_probe_once("simple_rnn", distance=3, seed=7, n_train=64, n_test=32, epochs=1, reseed=reseed)
    assert seeds == [RunDir(run_dir).load_config().seed] * 2 + [7]
