"""The Config: frozen, validated on creation (and on load), presets beside the registry, JSON round trip."""

import dataclasses

import pytest

from sentiment import models
from sentiment.config import PRESETS, Config, make_config
from sentiment.errors import ConfigError


def test_every_registered_model_has_a_preset_and_every_preset_a_model():
    assert set(PRESETS) == set(models.REGISTRY) | {models.WIDE_ONLY} and {"lstm", "simple_rnn"} <= set(PRESETS)
    assert all(isinstance(preset, dict) for preset in PRESETS.values())
    for preset in PRESETS.values():
        Config.from_dict(preset)  # each preset holds valid Config values


def test_flags_beat_presets_beat_defaults():
    config = make_config("simple_rnn", units=32, epochs=None)
    assert config.units == 32  # flag
    assert config.learning_rate == PRESETS["simple_rnn"]["learning_rate"]  # preset
    assert config.epochs == Config().epochs  # None means "not given"


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model 'transformer'"):
        make_config("transformer")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_config("lstm").units = 3


def test_json_round_trip(tmp_path):
    from sentiment import artifacts

    config = make_config("gru", max_len=123)
    artifacts.write_json(tmp_path / "config.json", config.to_dict())
    assert Config.load(tmp_path / "config.json") == config


def test_unknown_keys_from_newer_versions_are_ignored():
    assert Config.from_dict({"model": "lstm", "future_field": 1}).model == "lstm"


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("dropout", 1.5), ("max_len", 0), ("val_fraction", -0.1),
                                          ("truncate", "middle"), ("lr_decay", 0.0), ("units", "8"),
                                          ("pretrain_learning_rate", 0.0), ("pretrain_batch_size", 0), ("pretrain_dropout", 1.0)])
def test_impossible_settings_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config("lstm", **{field: value})


@pytest.mark.parametrize("content, message", [('{"epochs": 0}', "epochs=0"), ('{"model": "lstm", "uni', "not valid JSON"),
                                              ("[]", "JSON object")])
def test_loading_validates_too(tmp_path, content, message):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        Config.load(tmp_path / "config.json")


def test_the_split_follows_split_seed_when_given_else_seed():
    assert make_config("lstm", seed=43).data_seed() == 43
    assert make_config("lstm", seed=43, split_seed=42).data_seed() == 42
    with pytest.raises(ConfigError, match="split_seed"):
        make_config("lstm", split_seed=-2)


@pytest.mark.parametrize("field, value", [
    ("seed", -1), ("seed", 2**40), ("vocab_size", 10_000_000_000), ("batch_size", 99999999999999999999), ("max_len", 10**9),
    ("ngram_vocab_size", 10**9), ("units", 10**7), ("embedding_dim", 10**7), ("epochs", 10**9), ("pretrain_batch_size", 10**12),
    ("learning_rate", float("inf")), ("learning_rate", float("nan")), ("clipnorm", float("inf")), ("max_examples", 2**63),
])
def test_values_past_what_the_libraries_take_are_refused_in_one_line(field, value):
    with pytest.raises(ConfigError, match=f"{field}=.* is invalid"):
        make_config("lstm", **{field: value})


def test_a_model_name_must_be_one_train_py_accepts():
    with pytest.raises(ConfigError, match="model='../../../../tmp/x' is invalid: it must be one of"):
        Config.from_dict({"model": "../../../../tmp/x"})
    assert all(Config(model=name).model == name for name in PRESETS if name != "wide")
