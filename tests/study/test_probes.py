"""The synthetic probes: generators give the right targets, each task's model solves a tiny case and not a shuffled one."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from sentiment import models
from sentiment.study import probes
from sentiment.training import fitting


def rng(seed: int = 1) -> np.random.Generator:
    """A fresh generator for one test."""
    return np.random.default_rng(seed)


def test_first_token_data_puts_the_label_in_the_first_token_only():
    x, y = probes.make_first_token_data(400, 30, rng())
    assert x.shape == (400, 31) and x.dtype == np.int32
    np.testing.assert_array_equal(x[:, 0], np.where(y == 1, 3, 2))
    assert x[:, 1:].min() > 3 and x[:, 1:].max() < probes.PROBE_VOCAB  # distractors are never label tokens
    np.testing.assert_array_equal(x, probes.make_first_token_data(400, 30, rng())[0])


def test_interference_distractors_are_label_tokens_half_the_time_whatever_the_label():
    x, y = probes.make_interference_data(4000, 50, rng())
    np.testing.assert_array_equal(x[:, 0], np.where(y == 1, 3, 2))
    later = x[:, 1:]
    assert abs(np.isin(later, probes.SIGNAL_TOKENS).mean() - probes.INTERFERENCE_LABEL_SHARE) < 0.01
    positives_later = (later == 3).sum(axis=1)
    # Nothing after the first token tells the label: the count of later "positive" tokens is the same for both labels.
    assert abs(positives_later[y == 1].mean() - positives_later[y == 0].mean()) < 0.5
    assert abs((later[:, -1] == np.where(y == 1, 3, 2)).mean() - 0.25) < 0.03


def test_adding_data_marks_one_value_per_half_and_the_target_is_their_sum():
    x, y = probes.make_adding_data(20000, 10, rng())
    assert x.shape == (20000, 10, 2) and x.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    np.testing.assert_array_equal(markers[:, :5].sum(axis=1), 1)
    np.testing.assert_array_equal(markers[:, 5:].sum(axis=1), 1)
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)
    assert abs(((y - 1.0) ** 2).mean() - probes.ADDING_BASELINE_MSE) < 0.01  # the "predict 1" baseline


def test_recipes_differ_only_as_documented():
    probe, project, previous, check = (probes.RECIPES[r].config("simple_rnn", 100, 3) for r in ("probe", "project", "previous_study", "issue_check"))
    assert (probe.learning_rate, probe.lr_decay, probe.dropout, probe.embedding_dropout, probe.units) == (3e-3, 1.0, 0.0, 0.0, 32)
    assert probe.clipnorm == probes.probe_config("lstm", 100, 3).clipnorm  # one recipe for every cell: no per-model preset
    assert (project.learning_rate, project.clipnorm, project.lr_decay, project.dropout) == (5e-4, 0.5, 0.5, 0.5)  # train.py's
    assert previous == probe and dataclasses.replace(check, learning_rate=3e-3) == probe
    assert probe.max_len == 101 and probe.seed == 3  # the chrono horizon follows the task's length


def test_the_adding_model_is_the_registrys_recurrent_layer_with_a_linear_head():
    model = probes.build_regressor(probes.probe_config("lstm_chrono", 20, 0))
    layer = model.get_layer("recurrent")
    assert isinstance(layer, keras.layers.LSTM) and isinstance(layer.cell.bias_initializer, models.ChronoBias)
    assert model.layers[-1].activation is keras.activations.linear
    assert model.predict(np.zeros((3, 7, 2), np.float32), verbose=0).shape == (3, 1)


def shuffled(task: probes.ProbeTask) -> probes.ProbeTask:
    """The same task with targets permuted across sequences: nothing in the input predicts them."""

    def generate(n: int, length: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = task.generate(n, length, gen)
        return x, gen.permutation(y)

    return dataclasses.replace(task, generate=generate)


@pytest.mark.parametrize("task_name, model, length, budget", [
    ("first_token", "simple_rnn", 5, 150),
    ("interference", "gru", 5, 200),
    ("adding", "gru", 6, 500),
])
@pytest.mark.slow
def test_each_task_is_solved_at_a_tiny_length_and_never_on_shuffled_targets(task_name, model, length, budget, monkeypatch):
    task = dataclasses.replace(probes.TASKS[task_name], budget=budget)
    seeded = []

    def reseed(seed: int) -> None:
        seeded.append(seed)
        fitting.seed_everything(seed)

    solved = probes.run_cell(task, model, length, seed=0, reseed=reseed)
    assert solved["solved"] and seeded == [0], solved
    monkeypatch.setattr(keras.utils, "set_random_seed", seeded.append)
    unsolvable = probes.run_cell(dataclasses.replace(shuffled(task), budget=50), model, length, seed=0)
    assert seeded == [0]  # without the entry point's reseed, library code leaves the random state alone
    assert not unsolvable["solved"] and unsolvable["steps"] == 50
    assert abs(unsolvable["score"] - task.trivial) < 0.1 * max(task.trivial, 1.0)  # chance level / the baseline MSE


def fake_cell(task: probes.ProbeTask, model: str, length: int, seed: int, recipe: str, reseed=None) -> dict:
    """Stand-in for training a cell: solved on even seeds, its score naming the cell."""
    return {"score": length + seed / 10, "solved": seed % 2 == 0, "steps": length, "seconds": 0.0}


def test_grids_hold_every_seed_and_share_cells_trained_once(monkeypatch):
    trained = []
    monkeypatch.setattr(probes, "run_cell", lambda *args: trained.append(args[1:4]) or fake_cell(*args))
    both = probes.run_grids([probes.Grid("first_token", (10, 100), (0, 1)), probes.Grid("first_token", (100,), (0, 1))])
    assert len(trained) == 4 * 2 * 2 and {t[1] for t in trained[:8]} == {100}  # longest first: they set the wall time
    cell = both[0]["cells"]["gru"][1]
    assert cell == {"length": 100, "score": [100.0, 100.1], "solved": [True, False], "steps": [100, 100], "seconds": [0.0, 0.0]}
    assert both[1]["cells"]["gru"] == [cell] and both[0]["lengths"] == [10, 100] and both[0]["seeds"] == [0, 1]
    assert probes.solved_share(cell) == 0.5


@pytest.mark.slow
def test_cells_on_spawned_workers_match_this_process_and_keep_tensorflow_quiet(capfd):
    grid = probes.Grid("first_token", (3,), (0, 1), models=("simple_rnn",))
    alone = probes.run_grids([grid], fitting.seed_everything, workers=1)[0]
    capfd.readouterr()
    spread = probes.run_grids([grid], fitting.seed_everything, workers=2)[0]
    (one,), (two,) = alone["cells"]["simple_rnn"], spread["cells"]["simple_rnn"]
    assert [one[k] for k in ("score", "solved", "steps")] == [two[k] for k in ("score", "solved", "steps")]  # each cell seeds itself
    assert all(two["solved"])
    noise = [line for line in capfd.readouterr().err.splitlines() if line.startswith(("I0000", "W0000", "E0000", "WARNING: All log"))]
    assert noise == []  # the workers' TensorFlow start-up notices stay off the terminal
