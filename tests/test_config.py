"""The Config: presets, overrides, JSON round trip."""

import pytest

from sentiment import models
from sentiment.config import MODEL_PRESETS, Config, make_config
from sentiment.errors import ConfigError


def test_every_registered_model_has_a_preset():
    assert set(MODEL_PRESETS) == set(models.REGISTRY)


def test_flags_beat_presets_beat_defaults():
    config = make_config("simple_rnn", units=32, epochs=None)
    assert config.units == 32  # flag
    assert config.learning_rate == MODEL_PRESETS["simple_rnn"]["learning_rate"]  # preset
    assert config.epochs == Config().epochs  # None means "not given"


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'transformer'"):
        make_config("transformer")


def test_json_round_trip(tmp_path):
    from sentiment import artifacts

    config = make_config("gru", max_len=123)
    artifacts.write_json(tmp_path / "config.json", config.to_dict())
    assert Config.load(tmp_path / "config.json") == config


def test_unknown_keys_from_newer_versions_are_ignored():
    assert Config.from_dict({"model": "lstm", "future_field": 1}).model == "lstm"


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("dropout", 1.5), ("max_len", 0), ("val_fraction", -0.1),
                                          ("truncate", "middle"), ("lr_decay", 0.0)])
def test_impossible_settings_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config("lstm", **{field: value})
