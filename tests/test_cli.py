"""Command-line plumbing: config flags from presets and recipes, one-line errors, --help that tells the truth."""

from __future__ import annotations

import json

import pytest
from conftest import run_entry

from sentiment import cli
from sentiment.config import PRESETS


def noop(parser):
    """No extra flags."""


def test_flags_beat_recipe_beats_preset_beats_defaults(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"model": "simple_rnn", "units": 16, "max_len": 300}))
    _, config = cli.parse_training_args(["--config", str(recipe), "--max-len", "200"], noop, "")
    assert config.model == "simple_rnn"
    assert config.max_len == 200  # flag over recipe
    assert config.units == 16  # recipe over default
    assert config.learning_rate == PRESETS["simple_rnn"]["learning_rate"]  # preset over default
    _, config = cli.parse_training_args(["--config", str(recipe), "--model", "lstm"], noop, "")
    assert config.model == "lstm" and config.learning_rate == 1e-3 and config.units == 16


def test_shipped_recipe_files_are_valid():
    from conftest import ROOT

    recipes = sorted((ROOT / "configs").glob("*.json"))
    assert recipes
    for recipe in recipes:
        _, config = cli.parse_training_args(["--config", str(recipe)], noop, "")
        assert config.model in PRESETS


@pytest.mark.parametrize("content, message", [
    ('{"units": 8, "colour": "red"}', "unknown setting(s) colour"),
    ('{"units": "eight"}', "units='eight' is invalid"),
    ('{"units": 8', "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
])
def test_bad_recipes_are_config_errors(tmp_path, content, message):
    recipe = tmp_path / "bad.json"
    recipe.write_text(content)
    with pytest.raises(cli.SentimentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cli.parse_training_args(["--config", str(recipe)], noop, "")


def test_help_shows_the_values_the_model_really_trains_with(capsys):
    with pytest.raises(SystemExit) as done:
        run_entry("train.py", ["--model", "simple_rnn", "--help"], capsys)
    assert done.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.0005)" in help_text and "(default: 0.5)" in help_text  # simple_rnn's preset
    assert "--tfds-data-dir" in help_text and "--config FILE" in help_text
    assert "--distribute DISTRIBUTE" in help_text and "MultiWorkerMirroredStrategy from TF_CONFIG" in help_text


def test_parse_errors_are_one_line_usage_errors():
    parser = cli.ArgumentParser(prog="x")
    parser.add_argument("--n", type=int)
    with pytest.raises(cli.UsageError, match=r"argument --n: invalid int value: 'many' \(see x --help\)"):
        parser.parse_args(["--n", "many"])


def test_run_main_turns_user_errors_into_exit_codes(capsys):
    def fails(argv):
        raise cli.UsageError("bad thing")

    def disk(argv):
        raise PermissionError(13, "Permission denied", "/root/x")

    def interrupted(argv):
        raise KeyboardInterrupt

    assert cli.run_main(fails, []) == 2 and capsys.readouterr().err == "error: bad thing\n"
    assert cli.run_main(disk, []) == 2 and capsys.readouterr().err == "error: Permission denied: /root/x\n"
    assert cli.run_main(interrupted, []) == 130
    assert cli.run_main(lambda argv: 0, []) == 0


def test_default_models_dir_is_the_projects_own():
    from conftest import ROOT

    assert cli.DEFAULT_MODELS_DIR == ROOT / "saved_models"


def test_one_default_model_and_one_models_dir_flag_in_every_entry_point():
    """train.py with no --model trains what predict.py loads; every script names the models root --models-dir, anchored alike."""
    import importlib

    from sentiment.config import DEFAULT_MODEL

    _, config = cli.parse_training_args([], noop, "")
    assert config.model == DEFAULT_MODEL == importlib.import_module("sentiment.commands.predict").parse_args([]).model
    assert config.ngram_vocab_size == PRESETS[DEFAULT_MODEL]["ngram_vocab_size"]  # its preset, not bare defaults
    train = importlib.import_module("sentiment.commands.train")
    train_args, _ = cli.parse_training_args([], train.add_arguments, "")
    export_args = importlib.import_module("sentiment.commands.export_model").parse_args(["runs/x"])
    evaluate_args = importlib.import_module("sentiment.commands.evaluate").parse_args(["lstm"])
    predict_args = importlib.import_module("sentiment.commands.predict").parse_args([])
    for args in (evaluate_args, predict_args):  # readers: the shipped models
        assert args.models_dir == str(cli.DEFAULT_MODELS_DIR)
    for args in (train_args, export_args):  # writers: your own exports, never the shipped default's folder
        assert args.models_dir == cli.EXPORTS_DIR
    assert importlib.import_module("sentiment.commands.export_model").parse_args(["runs/x", "--export-dir", "m"]).models_dir == "m"  # the old name


def test_train_help_answers_without_importing_tensorflow():
    """The presets live beside Config, so listing the flags needs no TensorFlow (seconds to import)."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys, train\ntry:\n    train.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "--ngram-vocab-size" in result.stdout and result.stderr.strip().endswith("False"), result.stderr


def test_a_run_folder_given_as_a_model_names_the_export_command(tmp_path, capsys):
    from conftest import run_entry

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "metrics.json").write_text("{}")
    code, _, err = run_entry("predict.py", ["--model", str(tmp_path), "a fine film"], capsys)
    assert code == 2 and f"is a training run, not an exported model: export it with `python export_model.py {tmp_path}`" in err


def test_next_steps_name_the_export_and_the_commands_that_use_it(tmp_path):
    steps = cli.next_steps(tmp_path / "run", "wide", None)
    assert f"python export_model.py {tmp_path / 'run'}" in steps and "predict.py --model exports/wide" in steps
    exported = cli.next_steps(tmp_path / "run", "wide", tmp_path / "m" / "wide" / "1")
    assert "export_model.py" not in exported and f"serve.py --models-dir {tmp_path / 'm'}" in exported


def test_a_log_line_stays_one_line_whatever_a_request_put_in_it():
    import logging

    formatter = cli.OneLineFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "404 GET %s", ("/v1/models/x\n12:00:00 INFO forged\x1b[2J",), None)
    assert formatter.format(record) == "INFO 404 GET /v1/models/x\\n12:00:00 INFO forged\\x1b[2J"
