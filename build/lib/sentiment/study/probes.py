"""Synthetic probes of recurrent memory: which cell keeps a dependency over how many steps, against what.

Three tasks, one registry (``TASKS``: data generator, model head, solved criterion):

* ``first_token``: the label is the first token (2 negative, 3 positive), followed by N
  distractor tokens that are never label tokens.
* ``interference``: the same, but half the distractors are label tokens themselves, so a
  later "positive" must not overwrite the first token (the state has to gate input out).
* ``adding`` (Hochreiter & Schmidhuber, 1997; Le, Jaitly & Hinton, 2015): two float
  channels, a value in [0, 1] and a marker on exactly two steps (one in each half); the
  target is the sum of the two marked values. Predicting 1 always scores MSE 1/6 ≈ 0.167.

Models are the registry's recurrent layers (``sentiment.models.REGISTRY``): token tasks use
the project's classifier builder, the adding problem puts the same recurrent layer between
a float input and a linear output. Each cell is trained with a recipe from ``RECIPES``; the
study's own (``probe``) streams fresh sequences at a constant learning rate, no dropout,
for a fixed step budget, stopping early once a validation set is solved.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import math
import multiprocessing
import time
from typing import Callable, Iterator

import keras
import numpy as np

from sentiment import models, quiet
from sentiment.config import Config, make_config
from sentiment.training import fitting
from sentiment.training.loop import LoopRules

log = logging.getLogger(__name__)

PROBE_MODELS = ("simple_rnn", "lstm", "lstm_chrono", "gru")
SIGNAL_TOKENS = (2, 3)  # negative, positive; 0 is padding, 1 out-of-vocabulary
PROBE_VOCAB = 64
# Half the interference distractors are label tokens: by N=10 nearly every sequence has a later label token of each kind.
INTERFERENCE_LABEL_SHARE = 0.5
ADDING_CHANNELS = 2  # value, marker
ADDING_BASELINE_MSE = 1 / 6  # Var(U1 + U2) = 2/12: the MSE of always predicting the mean sum, 1
SOLVED_ACCURACY = 0.95
SOLVED_MSE = 0.01  # 6% of the baseline's MSE: the marked values are being added, not guessed
# Training stops early only with a margin over the solved rule, so a validation set that just passes is not a test set that just fails.
SETTLED_ACCURACY = 0.99
SETTLED_MSE = SOLVED_MSE / 2
VALIDATION_SIZE = 512
TEST_SIZE = 1024
FIXED_TRAIN_SIZE = 2048  # the epoch-based recipes' training set (as in the issue's independent check)
DATA_STREAMS = ("train", "validation", "test")

# Seeds the process-wide random state (e.g. fitting.seed_everything); passed in by the entry point.
Reseed = Callable[[int], None]
Generator = Callable[[int, int, np.random.Generator], "tuple[np.ndarray, np.ndarray]"]  # (n, length, rng) → x, y


def reseed_if_given(reseed: Reseed | None, seed: int) -> None:
    """Call ``reseed(seed)`` when the caller gave a seeding function."""
    if reseed is not None:
        reseed(seed)


# ---------------------------------------------------------------------------
# Data generators: (n, length, rng) → inputs, targets


def make_first_token_data(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` sequences of a label token then ``length`` non-label distractors: ids int32 [n, length+1], labels float32 [n]."""
    labels = rng.integers(0, 2, size=n)
    distractors = rng.integers(max(SIGNAL_TOKENS) + 1, PROBE_VOCAB, size=(n, length))
    signal = np.asarray(SIGNAL_TOKENS)[labels][:, None]
    return np.concatenate([signal, distractors], axis=1).astype(np.int32), labels.astype(np.float32)


def make_interference_data(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return first-token sequences whose distractors are label tokens (either, at random) with probability 1/2."""
    x, labels = make_first_token_data(n, length, rng)
    relabel = rng.random((n, length)) < INTERFERENCE_LABEL_SHARE
    x[:, 1:][relabel] = rng.choice(SIGNAL_TOKENS, size=int(relabel.sum()))  # independent of the label
    return x, labels


def make_adding_data(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return adding-problem sequences: float32 [n, length, 2] (value, marker) and the sum of the two marked values [n]."""
    values = rng.random((n, length))
    rows = np.arange(n)
    # One marker in each half (Le et al., 2015), so the first must be held for length/2 steps or more.
    first = rng.integers(0, length // 2, size=n)
    second = rng.integers(length // 2, length, size=n)
    markers = np.zeros((n, length))
    markers[rows, first] = markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1).astype(np.float32), targets.astype(np.float32)


def data_rng(seed: int, length: int, stream: str) -> np.random.Generator:
    """Return the generator of one data stream: the same sequences for every model of a (seed, length)."""
    return np.random.default_rng([seed, length, DATA_STREAMS.index(stream)])


# ---------------------------------------------------------------------------
# Heads: building, compiling and scoring the model a task needs


def build_regressor(config: Config) -> keras.Model:
    """Build float channels [batch, time, 2] → the registry's recurrent layer → linear output [batch, 1]."""
    channels = keras.Input(shape=(None, ADDING_CHANNELS), dtype="float32", name="channels")
    state = models.REGISTRY[config.model](config, "float32")(channels)
    return keras.Model(channels, keras.layers.Dense(1, name="sum")(state), name=f"{config.model}_regressor")


def compile_regressor(model: keras.Model, config: Config) -> keras.Model:
    """Compile with the config's clipped Adam and mean squared error."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm), loss="mse")
    return model


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Return the model's outputs as float [n]."""
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64).reshape(-1)


def score_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Return the share of sequences classified right at threshold 0.5."""
    return float(((predict(model, x) >= 0.5) == y).mean())


def score_mse(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Return the mean squared error of the predicted sums."""
    return float(((predict(model, x) - y) ** 2).mean())


@dataclasses.dataclass(frozen=True)
class ProbeTask:
    """A synthetic task: its data, the model head it needs, what counts as solved, and its step budget."""

    generate: Generator
    build: Callable[[Config], keras.Model]
    compile: Callable[[keras.Model, Config], keras.Model]
    score: Callable[[keras.Model, np.ndarray, np.ndarray], float]
    metric: str  # what ``score`` measures
    lower_is_better: bool
    solved_at: float  # test score that counts as solved
    settled_at: float  # validation score at which the probe recipe stops early
    trivial: float  # the score of a model that ignores the input
    lengths: tuple[int, ...]
    budget: int  # training steps (batches) of the probe recipe
    describe: str
    demands: str  # what the recurrent state has to do to solve it

    def reaches(self, score: float, threshold: float) -> bool:
        """Return True if ``score`` is at ``threshold`` or better (below it, for an error)."""
        return score < threshold if self.lower_is_better else score >= threshold

    def solved(self, score: float) -> bool:
        """Return True if a test score solves the task."""
        return self.reaches(score, self.solved_at)

    def settled(self, score: float) -> bool:
        """Return True if a validation score is good enough to stop training."""
        return self.reaches(score, self.settled_at)

    @property
    def rule(self) -> str:
        """``solved`` in words, for the report."""
        return f"test {self.metric} {'<' if self.lower_is_better else '≥'} {self.solved_at}"


TOKEN_TASK = dict(build=models.build_model, compile=models.compile_model, score=score_accuracy, metric="accuracy",
                  lower_is_better=False, solved_at=SOLVED_ACCURACY, settled_at=SETTLED_ACCURACY, trivial=0.5,
                  lengths=(10, 50, 100, 200, 400), budget=600)
TASKS: dict[str, ProbeTask] = {
    "first_token": ProbeTask(
        generate=make_first_token_data, **TOKEN_TASK,
        describe="label = the first token, then N distractors that are never label tokens",
        demands="keep one token; nothing later competes for the state",
    ),
    "interference": ProbeTask(
        generate=make_interference_data, **TOKEN_TASK,
        describe="label = the first token, then N distractors, half of them label tokens of either kind",
        demands="keep one token while later tokens of the same kinds are kept out of the state",
    ),
    "adding": ProbeTask(
        generate=make_adding_data, build=build_regressor, compile=compile_regressor, score=score_mse, metric="MSE",
        lower_is_better=True, solved_at=SOLVED_MSE, settled_at=SETTLED_MSE, trivial=ADDING_BASELINE_MSE,
        lengths=(50, 100, 200, 400), budget=1500,
        describe="target = sum of the two marked values among T (value, marker) steps",
        demands="write two values chosen by a marker into the state and add them, while every step brings a new value",
    ),
}


# ---------------------------------------------------------------------------
# Recipes: how a cell is trained


def probe_config(model: str, length: int, seed: int) -> Config:
    """Return the probe recipe's config: small model, constant Adam 3e-3, clipnorm 1, no dropout, same for every cell."""
    # 3e-3, not 1e-3: in a seed-0 pilot of the adding problem at T=100, 1e-3 left the LSTM at the baseline after 2,000 steps.
    return make_config(
        model, vocab_size=PROBE_VOCAB, max_len=length + 1, embedding_dim=16, units=32, readout="last",
        embedding_dropout=0.0, dropout=0.0, learning_rate=3e-3, clipnorm=1.0, lr_decay=1.0, batch_size=64, seed=seed,
    )


def project_config(model: str, length: int, seed: int) -> Config:
    """Return what train.py would use for ``model``: defaults and preset (dropout, halving learning rate, early stopping)."""
    return make_config(model, vocab_size=PROBE_VOCAB, max_len=length + 1, seed=seed)


def keras_default_config(model: str, length: int, seed: int) -> Config:
    """Return the probe model at Adam's default step, 1e-3 (the issue's independent check)."""
    return dataclasses.replace(probe_config(model, length, seed), learning_rate=1e-3)


def fit_stream(model: keras.Model, task: ProbeTask, length: int, config: Config, eval_every: int = 50) -> int:
    """Train on fresh batches until validation is clearly solved or ``task.budget`` steps are spent; return the steps."""
    train_rng = data_rng(config.seed, length, "train")
    x_val, y_val = task.generate(VALIDATION_SIZE, length, data_rng(config.seed, length, "validation"))
    steps = 0
    while steps < task.budget:
        chunk = min(eval_every, task.budget - steps)
        x, y = task.generate(chunk * config.batch_size, length, train_rng)
        model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0)
        steps += chunk
        if task.settled(task.score(model, x_val, y_val)):
            break
    return steps


def fit_fixed_set(model: keras.Model, task: ProbeTask, length: int, config: Config,
                  callbacks: list[keras.callbacks.Callback], epochs: int) -> int:
    """Train epochs over one fixed training set with validation-driven ``callbacks``; return the steps taken."""
    x, y = task.generate(FIXED_TRAIN_SIZE, length, data_rng(config.seed, length, "train"))
    val = task.generate(VALIDATION_SIZE, length, data_rng(config.seed, length, "validation"))
    history = model.fit(x, y, validation_data=val, batch_size=config.batch_size, epochs=epochs, callbacks=callbacks, verbose=0)
    return len(history.history["loss"]) * math.ceil(FIXED_TRAIN_SIZE / config.batch_size)


def fit_project(model: keras.Model, task: ProbeTask, length: int, config: Config) -> int:
    """Train as train.py does: learning rate times lr_decay per epoch, early stopping on validation loss."""
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    return fit_fixed_set(model, task, length, config, [fitting.learning_rate_schedule(LoopRules.from_config(config)), stop], config.epochs)


def fit_previous(model: keras.Model, task: ProbeTask, length: int, config: Config) -> int:
    """Train as the previous study's probe did: up to 8 epochs, stopping after 2 without a better validation accuracy."""
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    return fit_fixed_set(model, task, length, config, [stop], epochs=8)


def fit_eight_epochs(model: keras.Model, task: ProbeTask, length: int, config: Config) -> int:
    """Train 8 epochs over the fixed set, nothing stopping it early."""
    return fit_fixed_set(model, task, length, config, [], epochs=8)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a probe cell is trained: its config and its fitting loop."""

    config: Callable[[str, int, int], Config]  # (model, length, seed) → Config
    fit: Callable[[keras.Model, ProbeTask, int, Config], int]  # trains in place, returns the steps taken
    describe: str


RECIPES: dict[str, Recipe] = {
    "probe": Recipe(probe_config, fit_stream, (
        "this study's: embedding 16, 32 units, no dropout, Adam 3e-3 constant, clipnorm 1, batch 64, a fresh batch per step, "
        "validation (512 sequences) every 50 steps, stop once it reaches accuracy 0.99 (adding: MSE 0.005) or the task's "
        "step budget is spent")),
    "project": Recipe(project_config, fit_project, (
        "train.py's for the model: its preset (64-wide embedding and cell, SpatialDropout 0.4, dropout 0.5; simple_rnn "
        "Adam 5e-4 clipnorm 0.5, others 1e-3 clipnorm 1), learning rate halved every epoch, early stopping on validation "
        "loss (patience 2, best weights), at most 10 epochs of 2,048 fixed sequences")),
    "previous_study": Recipe(probe_config, fit_previous, (
        "the previous study's probe: the probe model at Adam 3e-3 constant, 2,048 fixed sequences, at most 8 epochs, "
        "early stopping on validation accuracy (patience 2, best weights)")),
    "issue_check": Recipe(keras_default_config, fit_eight_epochs, (
        "the issue's independent check: the probe model at Adam 1e-3 (Keras' default) constant, 2,048 fixed sequences, "
        "8 epochs, no early stopping")),
}


# ---------------------------------------------------------------------------
# Cells and grids


def run_cell(task: ProbeTask, model_name: str, length: int, seed: int, recipe: str = "probe",
             reseed: Reseed | None = None) -> dict:
    """Train one model on one task at one length (after ``reseed(seed)``); return its test score, solved flag and steps."""
    started = time.perf_counter()
    config = RECIPES[recipe].config(model_name, length, seed)
    reseed_if_given(reseed, seed)
    model = task.compile(task.build(config), config)
    steps = RECIPES[recipe].fit(model, task, length, config)
    x, y = task.generate(TEST_SIZE, length, data_rng(seed, length, "test"))
    score = task.score(model, x, y)
    keras.backend.clear_session()  # hundreds of cells: keep the graph and name counters from growing
    return {"score": score, "solved": task.solved(score), "steps": steps, "seconds": round(time.perf_counter() - started, 1)}


Job = tuple[str, str, int, int, str]  # task, model, length, seed, recipe


@dataclasses.dataclass(frozen=True)
class Grid:
    """One task under one recipe: every model at every length, over every seed."""

    task: str
    lengths: tuple[int, ...]
    seeds: tuple[int, ...]
    recipe: str = "probe"
    models: tuple[str, ...] = PROBE_MODELS

    def jobs(self) -> list[Job]:
        """Return the cells to train, one per model, length and seed."""
        return [(self.task, m, n, s, self.recipe) for m in self.models for n in self.lengths for s in self.seeds]


def run_job(job: Job, reseed: Reseed | None = None) -> dict:
    """Run one cell named by ``job`` (what a worker process receives)."""
    task, model, length, seed, recipe = job
    return run_cell(TASKS[task], model, length, seed, recipe, reseed)


@contextlib.contextmanager
def cell_mapper(workers: int) -> Iterator[Callable]:
    """Yield a ``map`` over cells: in this process, or on ``workers`` spawned processes (each cell seeds itself)."""
    if workers <= 1:
        yield map
        return
    # spawn, not fork: a forked copy of a process that already runs TensorFlow's threads can deadlock.
    # The initializer lives in a module without TensorFlow, so unpickling it imports nothing noisy first.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=quiet.import_tensorflow_quietly) as pool:
        yield pool.map


def run_grids(grids: list[Grid], reseed: Reseed | None = None, workers: int = 1) -> list[dict]:
    """Run every cell of ``grids`` once (shared cells once), longest sequences first; return each grid's results."""
    jobs = sorted({job for grid in grids for job in grid.jobs()}, key=lambda job: (-job[2], job))  # the long cells set the wall time
    results = {}
    with cell_mapper(workers) as cell_map:
        for i, (job, result) in enumerate(zip(jobs, cell_map(functools.partial(run_job, reseed=reseed), jobs)), 1):
            results[job] = result
            log.info("cell %d/%d %s %s N=%d seed %d (%s): %s %.4g after %d steps, %.0f s", i, len(jobs), *job,
                     TASKS[job[0]].metric, result["score"], result["steps"], result["seconds"])
    return [summarize_grid(grid, results) for grid in grids]


def summarize_grid(grid: Grid, results: dict[Job, dict]) -> dict:
    """Return one grid's cells (per model, per length: every seed's score, solved flag, steps, seconds) and its task's terms."""
    task = TASKS[grid.task]
    cells = {m: [collect_seeds([results[(grid.task, m, n, s, grid.recipe)] for s in grid.seeds], n) for n in grid.lengths]
             for m in grid.models}
    for m, row in cells.items():
        log.info("%s (%s recipe) %s: solved %s", grid.task, grid.recipe, m, {c["length"]: f"{sum(c['solved'])}/{len(grid.seeds)}" for c in row})
    return {"task": grid.task, "recipe": grid.recipe, "metric": task.metric, "rule": task.rule, "trivial": task.trivial,
            "budget": task.budget, "describe": task.describe, "lengths": list(grid.lengths), "seeds": list(grid.seeds), "cells": cells}


def collect_seeds(runs: list[dict], length: int) -> dict:
    """Turn per-seed cell results into one cell: lists per field, in seed order."""
    return {"length": length, **{key: [run[key] for run in runs] for key in ("score", "solved", "steps", "seconds")}}


def solved_share(cell: dict) -> float:
    """Return the share of seeds that solved a cell."""
    return sum(cell["solved"]) / len(cell["solved"])
