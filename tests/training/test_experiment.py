"""One whole run per registered model, in seconds, and the run directory it leaves."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.config import Config
from sentiment.errors import ConfigError
from sentiment.training import experiment


# lstm in the quick suite (wide_lstm trains there in tests/test_litert_engine.py); the other layers with the slow tests.
@pytest.mark.parametrize("name", [n if n == "lstm" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(models.REGISTRY)])
def test_every_model_trains_end_to_end(tiny_config, tmp_path, name):
    config = tiny_config(name, epochs=5, learning_rate=0.02, embedding_dropout=0.0, dropout=0.0)
    run_dir = experiment.run(config, tmp_path / name)
    for file in ("config.json", "run.json", "history.csv", "vocabulary.txt", "model.keras", "metrics.json", "checkpoints/best.keras"):
        assert (run_dir / file).exists(), file
    assert Config.load(run_dir / "config.json") == config
    metrics = artifacts.read_json(run_dir / "metrics.json")
    for key in ("accuracy", "loss", "precision", "recall", "f1", "roc_auc", "examples", "parameters"):
        assert key in metrics
    assert metrics["examples"] == 40 and metrics["data"]["sizes"]["train"] == 120
    assert metrics["training"]["tokens_per_second"] > 0 and metrics["training"]["reviews_per_second"] > 0
    assert metrics["parameters"] == keras.saving.load_model(run_dir / "checkpoints/best.keras").count_params()
    # The data is trivially separable by its sentiment words; every model must beat chance.
    assert metrics["validation"]["accuracy"] > 0.6


@pytest.mark.slow
def test_saved_end_to_end_model_reads_raw_text(tiny_config, tmp_path):
    run_dir = experiment.run(tiny_config("lstm", epochs=4, learning_rate=0.02), tmp_path / "run")
    model = keras.saving.load_model(run_dir / "model.keras")
    probs = model.predict(tf.constant(["great wonderful excellent film", "awful terrible boring film"]), verbose=0)
    assert probs.shape == (2, 1)
    assert probs[0, 0] > probs[1, 0]


@pytest.mark.slow
def test_finished_run_dir_is_not_overwritten(tiny_config, tmp_path):
    config = tiny_config("simple_rnn", epochs=1)
    run_dir = experiment.run(config, tmp_path / "run")
    with pytest.raises(ConfigError, match="finished run"):
        experiment.run(config, run_dir)


def test_resume_with_different_settings_is_refused(tiny_config, tmp_path):
    from sentiment.rundir import RunDir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    experiment.record_run(RunDir(run_dir), tiny_config("lstm"), argv=None)
    with pytest.raises(ConfigError, match="units"):
        experiment.run(tiny_config("lstm", units=16), run_dir)
