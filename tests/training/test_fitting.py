"""Training: determinism, resume after interruption, callbacks, timing."""

from __future__ import annotations

import keras
import pytest
from conftest import CrashAtEpoch

from sentiment import artifacts
from sentiment.rundir import RunDir
from sentiment.training import experiment, fitting


class RecordStart(keras.callbacks.Callback):
    """Records which epochs start."""

    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


@pytest.mark.slow
def test_same_config_twice_gives_same_validation_metrics(tiny_config, tmp_path):
    config = tiny_config("lstm", epochs=2)
    histories = []
    for name in ("a", "b"):
        fitting.seed_everything(config.seed)  # what train.py does before every run
        histories.append(fitting.read_history(RunDir(experiment.run(config, tmp_path / name))))
    for key in ("loss", "val_loss", "val_accuracy"):
        assert [row[key] for row in histories[0]] == [row[key] for row in histories[1]]


@pytest.mark.slow  # end to end, tens of seconds: with the slow tests (CI runs both)
def test_interrupted_run_resumes_from_last_finished_epoch(tiny_config, tmp_path, caplog):
    config = tiny_config("gru", epochs=3, patience=5)
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, run_dir.path, extra_callbacks=[CrashAtEpoch(2)])
    assert fitting.epochs_backed_up(run_dir) == 2
    assert len(fitting.read_history(run_dir)) == 2
    assert not run_dir.metrics.exists()

    started = RecordStart()
    with caplog.at_level("INFO"):
        experiment.run(config, run_dir.path, extra_callbacks=[started])
    assert started.epochs == [2]  # only the unfinished epoch ran again
    assert "resuming" in caplog.text
    history = fitting.read_history(run_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert run_dir.metrics.exists()


def run_straight_and_killed(config, tmp_path, kill_at: int) -> tuple[RunDir, RunDir]:
    """Run ``config`` uninterrupted, and again killed as epoch ``kill_at`` begins then resumed; return both runs."""
    fitting.seed_everything(config.seed)
    straight = RunDir(experiment.run(config, tmp_path / "straight", verbose=0))
    resumed = RunDir(tmp_path / "resumed")
    fitting.seed_everything(config.seed)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, resumed.path, verbose=0, extra_callbacks=[CrashAtEpoch(kill_at)])
    fitting.seed_everything(config.seed)  # the same command again: train.py seeds before every run
    experiment.run(config, resumed.path, verbose=0)
    return straight, resumed


@pytest.mark.slow
def test_killed_and_resumed_run_ends_exactly_like_an_uninterrupted_one(tiny_config, tmp_path):
    """Seeded per-epoch shuffles and restored optimizer and dropout RNG state: a resumed CPU run is the same run."""
    straight, resumed = run_straight_and_killed(tiny_config("lstm", epochs=4, patience=9, lr_decay=0.7), tmp_path, kill_at=2)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    assert [[row[k] for k in keys] for row in fitting.read_history(resumed)] == \
        [[row[k] for k in keys] for row in fitting.read_history(straight)]
    metrics = [artifacts.read_json(run.metrics) for run in (straight, resumed)]
    assert metrics[0]["loss"] == metrics[1]["loss"] and metrics[0]["accuracy"] == metrics[1]["accuracy"]


def test_epochs_are_shuffled_differently_and_the_same_epoch_alike(tiny_config):
    """The training pipeline's order is a function of (seed, epoch) only."""
    from sentiment.data import batching, preprocessing

    config = tiny_config("lstm")
    splits = preprocessing.load_clean_splits(config)
    preprocessor = preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(splits.train.texts, config))
    epoch = batching.epoch_variable()
    ds = batching.make_train_dataset(splits.train, preprocessor, config, epoch)

    def labels_in_order(e: int) -> list[float]:
        epoch.assign(e)
        return [float(v) for _, y in ds for v in y.numpy()]

    first, second, first_again = labels_in_order(0), labels_in_order(1), labels_in_order(0)
    assert first == first_again and first != second


def test_trim_history_drops_rows_the_backup_does_not_hold(tmp_path):
    run = RunDir(tmp_path)
    run.history.write_text("epoch,loss\n0,0.5\n1,0.4\n2,0.3\n")
    fitting.trim_history(run, 2)
    assert [row["epoch"] for row in fitting.read_history(run)] == [0.0, 1.0]


def test_resumed_early_stopping_keeps_its_patience(tmp_path):
    from sentiment.training.loop import LoopRules

    stopper = fitting.EarlyStop(LoopRules(epochs=9, patience=2, learning_rate=1e-3, lr_decay=1.0), [0.5, 0.4, 0.45], tmp_path / "none.keras")
    stopper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    stopper.on_train_begin()
    stopper.on_epoch_end(3, {"val_loss": 0.41})  # a second epoch without improvement on 0.4: patience used up
    assert stopper.model.stop_training


@pytest.mark.slow
@pytest.mark.parametrize("patience", [0])
def test_a_resumed_run_stops_where_an_uninterrupted_one_stops(tiny_config, tmp_path, patience):
    """One rule for both: --patience 0 means stop at the first epoch without improvement, resumed or not."""
    straight, resumed = run_straight_and_killed(tiny_config("lstm", epochs=4, patience=patience, learning_rate=0.02), tmp_path, kill_at=1)
    assert len(fitting.read_history(resumed)) == len(fitting.read_history(straight))
    assert artifacts.read_json(resumed.metrics)["accuracy"] == artifacts.read_json(straight.metrics)["accuracy"]


def test_epoch_timer_separates_training_from_validation_time():
    import time

    timer = fitting.EpochTimer()
    logs = {}
    timer.on_epoch_begin(0)
    timer.on_test_begin()
    time.sleep(0.05)  # "validation"
    timer.on_epoch_end(0, logs)
    assert logs["train_seconds"] < 0.04 and logs["epoch_seconds"] >= 0.05


class CrashAtTrainEnd(keras.callbacks.Callback):
    """Simulates a kill after the last epoch but before the run's metrics are written."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_run_killed_after_training_is_not_retrained(tiny_config, tmp_path, caplog):
    config = tiny_config("lstm", epochs=2)
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, run_dir.path, extra_callbacks=[CrashAtTrainEnd()])
    assert fitting.epochs_backed_up(run_dir) == 2 and not run_dir.metrics.exists()
    started = RecordStart()
    with caplog.at_level("INFO"):
        experiment.run(config, run_dir.path, extra_callbacks=[started])
    assert started.epochs == [] and "had finished training" in caplog.text
    assert run_dir.metrics.exists() and not run_dir.backup.exists()
    assert len(fitting.read_history(run_dir)) == 2


def test_bad_data_leaves_no_run_dir(tiny_config, tmp_path):
    from sentiment.errors import DataError

    with pytest.raises(DataError):
        experiment.run(tiny_config("lstm", data=str(tmp_path / "missing.csv")), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_xla_training_really_compiles_and_trains(tiny_config, tmp_path, monkeypatch):
    """jit_compile=on: Keras really compiles with XLA (op determinism off, as train.py sets it) and the run trains."""
    from sentiment import artifacts, models

    # The LSTM only: a wide model compiles too (checked by hand) but costs ~90 s of XLA compilation here.
    config = tiny_config("lstm", jit_compile="on", epochs=4, learning_rate=0.02)
    assert models.use_xla(config)
    fitting.seed_everything(0, deterministic_ops=False)  # what train.py does for an XLA run
    compiled = []
    monkeypatch.setattr(models, "compile_model", lambda m, c, f=models.compile_model: compiled.append(f(m, c)) or compiled[-1])
    try:
        run = RunDir(experiment.run(config, tmp_path / "run", verbose=0))
    finally:
        fitting.seed_everything(0)  # op determinism back on for the other tests
    assert compiled and all(m.jit_compile for m in compiled)  # Keras really compiled with XLA
    losses = [row["loss"] for row in fitting.read_history(run)]
    assert len(losses) == 4 and losses[-1] < losses[0]  # it trains (the exact numbers differ from the CPU kernels')
    assert 0 <= artifacts.read_json(run.metrics)["accuracy"] <= 1


def test_xla_auto_means_off_on_a_gpu(tiny_config, monkeypatch):
    from sentiment import models

    monkeypatch.setattr(models, "gpu_available", lambda: True)
    assert not models.use_xla(tiny_config(jit_compile="auto"))
    monkeypatch.setattr(models, "gpu_available", lambda: False)
    assert models.use_xla(tiny_config(jit_compile="auto")) and not models.use_xla(tiny_config(jit_compile="off"))


def test_wide_models_never_use_xla(tiny_config, caplog):
    """The wide branch's sparse bincount has no XLA kernel: asking for XLA warns and trains without it."""
    from sentiment import models

    assert not models.use_xla(tiny_config("wide_lstm", ngram_vocab_size=500, jit_compile="auto"))
    assert not models.use_xla(tiny_config("wide_lstm", ngram_vocab_size=500, jit_compile="on"))
    assert "no XLA kernel" in caplog.text
