"""Every entry point as users run it: hostile input gets one `error:` line, a non-zero exit, nothing half-written.

The scripts run in-process through their ``main(argv)`` (fast); the few tests that need a
real process (SIGKILL, two exporters at once, the README's kill-and-resume) are marked slow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, make_reviews, run_entry, wait_for_epochs, write_aclimdb, write_csv

from sentiment import cli
from sentiment.rundir import RunDir
from sentiment.training import fitting

TINY = ["--vocab-size", "64", "--max-len", "32", "--embedding-dim", "8", "--units", "8", "--batch-size", "16",
        "--val-fraction", "0.2", "--test-fraction", "0.2",
        # The default model learns word vectors: they go to a temporary folder, never the checkout's pretrained/.
        "--pretrain-dir", str(Path(tempfile.gettempdir()) / "sentiment-tests-pretrained")]


def assert_one_line_error(code: int, err: str, message: str) -> None:
    """The user sees exactly one error line (the last), naming the problem, and no traceback."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: ") and message in lines[-1], err
    assert sum(line.startswith("error: ") for line in lines) == 1


def tar_bytes_corrupt(path: Path) -> Path:
    """Write a .tar.gz whose gzip stream breaks half-way."""
    good = path.with_name("good.tar.gz")
    import tarfile

    base = write_aclimdb(path.parent / "src")
    with tarfile.open(good, "w:gz") as tar:
        tar.add(base, arcname="aclImdb")
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 10)
    return path


# ---------------------------------------------------------------------------
# train.py: bad data


def bad_sources(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Each hostile data source and the words its error must contain."""
    one_class = [(t, 1) for t, _ in make_reviews(40)]
    corrupt_gz = tmp / "corrupt.csv.gz"
    corrupt_gz.write_bytes(gzip.compress(b"text,label\n" + b"good film,1\n" * 50)[:40])
    not_utf8 = tmp / "latin1.csv"
    not_utf8.write_bytes("text,label\ncaf\u00e9 cr\u00e8me,1\n".encode("latin-1"))
    empty = tmp / "empty.csv"
    empty.write_bytes(b"")
    header = tmp / "header.csv"
    header.write_bytes(b"text,label\n")
    not_acl = tmp / "photos"
    not_acl.mkdir()
    (not_acl / "cat.jpg").write_bytes(b"\xff\xd8")
    return {
        "no text column": (write_csv(tmp / "notext.csv", [("x", 1)], header=("review", "label")), "lacks column(s) text"),
        "no label column": (write_csv(tmp / "nolabel.csv", [("x", 1)], header=("text", "sentiment")), "lacks column(s) label"),
        "bad label": (write_csv(tmp / "badlabel.csv", [("fine", 1), ("ok", "neg"), ("meh", "3")]), "row 3"),
        "empty": (empty, "is empty"),
        "header only": (header, "no reviews"),
        "one class": (write_csv(tmp / "oneclass.csv", one_class), "only one class"),
        "not utf-8": (not_utf8, "not UTF-8"),
        "corrupt gzip": (corrupt_gz, "cannot read CSV"),
        "corrupt tarball": (tar_bytes_corrupt(tmp / "aclImdb_v1.tar.gz"), "cannot read aclImdb archive"),
        "not aclImdb": (not_acl, "no reviews under train/pos"),
        "missing": (tmp / "nowhere.csv", "data not found"),
    }


@pytest.mark.parametrize("case", ["no text column", "no label column", "bad label", "empty", "header only", "one class",
                                  "not utf-8", "corrupt gzip", "corrupt tarball", "not aclImdb", "missing"])
def test_train_bad_data_is_one_line_error_and_leaves_no_run_dir(tmp_path, capsys, case):
    data, message = bad_sources(tmp_path)[case]
    code, _, err = run_entry("train.py", ["--data", str(data), "--run-dir", str(tmp_path / "run"), *TINY], capsys)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_bad_label_names_every_accepted_spelling(tmp_path, capsys):
    data = write_csv(tmp_path / "l.csv", [("fine", "positive"), ("bad", "negative"), ("meh", "good")])
    code, _, err = run_entry("train.py", ["--data", str(data), "--run-dir", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, "row 3 (line 4): label 'good' is not one of 0, 1, neg, pos, negative, positive")


# ---------------------------------------------------------------------------
# train.py: impossible flags and run directories


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "epochs=0 is invalid"),
    (["--batch-size", "-1"], "batch_size=-1 is invalid"),
    (["--vocab-size", "1"], "vocab_size=1 is invalid"),
    (["--max-len", "0"], "max_len=0 is invalid"),
    (["--model", "transformer"], "unknown model 'transformer'"),
    (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--config", "missing.json"], "cannot read config missing.json"),
])
def test_train_impossible_flags(tmp_path, capsys, csv_path, flags, message):
    code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(tmp_path / "run"), *flags], capsys)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_file_or_a_folder_of_user_files_as_run_dir(tmp_path, capsys, csv_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("my notes")
    code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(a_file), *TINY], capsys)
    assert_one_line_error(code, err, "is a file, not a directory")
    assert a_file.read_text() == "my notes"

    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(folder), *TINY], capsys)
    assert_one_line_error(code, err, "is not a run directory and not empty")
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]
    assert (folder / "chapter1.tex").read_text() == "precious"


def test_train_resume_with_truncated_config_is_one_line_error(tmp_path, capsys, csv_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "lstm", "vocab_si')
    code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(run), *TINY], capsys)
    assert_one_line_error(code, err, "config.json is unreadable")


@pytest.fixture
def interrupted_run(tmp_path, csv_path) -> tuple[RunDir, list[str]]:
    """Return a run train.py started with the returned argv and that was interrupted after 1 of its 3 epochs."""
    import keras

    from sentiment.commands import train
    from sentiment.training import experiment

    class InterruptAfterEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            raise KeyboardInterrupt  # Ctrl-C, once the epoch's checkpoint, history row and backup are written

    run = RunDir(tmp_path / "run")
    argv = ["--data", str(csv_path), "--run-dir", str(run.path), "--epochs", "3", "--patience", "5", *TINY]
    _, config = cli.parse_training_args(argv, train.add_arguments, "")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, run.path, verbose=0, extra_callbacks=[InterruptAfterEpoch()])
    assert fitting.epochs_backed_up(run) == 1 and run.checkpoint.is_file() and not run.is_finished()
    return run, argv


def truncate(path: Path) -> None:
    """Keep the first third of a file, as a disk that filled up or an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_train_resume_with_truncated_best_checkpoint_is_one_line_error(interrupted_run, capsys):
    run, argv = interrupted_run
    truncate(run.checkpoint)
    code, _, err = run_entry("train.py", argv, capsys)
    assert_one_line_error(code, err, f"cannot load model {run.checkpoint}")
    assert not run.is_finished()


@pytest.mark.slow
def test_train_resume_with_truncated_model_rewrites_it(interrupted_run, capsys, caplog):
    run, argv = interrupted_run
    run.model.write_bytes(run.checkpoint.read_bytes())  # a model.keras left by an earlier session of this run...
    truncate(run.model)  # ...and cut short
    with caplog.at_level("INFO"):
        code, out, err = run_entry("train.py", argv, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert f"resuming {run.path} after 1 finished epoch(s)" in caplog.text and f"run saved to {run.path}" in out
    assert run.is_finished()
    from sentiment import models

    assert models.load_model(run.model) is not None  # rewritten whole


def test_train_on_a_finished_run_with_truncated_model_is_one_line_error(broken_run, capsys, csv_path):
    run = broken_run("model.keras")
    code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(run), *TINY], capsys)
    assert_one_line_error(code, err, "holds a finished run; choose another --run-dir")


def test_second_trainer_on_a_run_dir_is_refused_while_the_first_holds_it(tmp_path, capsys, csv_path):
    run = RunDir(tmp_path / "run")
    with run.lock():  # the first train.py (this process holds the flock on its own open file)
        code, _, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(run.path), *TINY], capsys)
    assert_one_line_error(code, err, f"is in use by PID {os.getpid()}")
    assert not run.config.exists()


@pytest.mark.slow
def test_stale_lock_of_a_dead_process_does_not_block(tmp_path, capsys, csv_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.write_text("PID 999999 on some-host\n")  # written, but no process holds the flock
    code, out, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(run.path), "--epochs", "1", *TINY], capsys)
    assert code == 0, err
    assert run.is_finished()


@pytest.mark.slow
def test_train_logs_hold_no_keras_data_warnings(tmp_path, capsys, csv_path, caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("INFO"):
        warnings.simplefilter("always")
        code, out, err = run_entry("train.py", ["--data", str(csv_path), "--run-dir", str(tmp_path / "r"), "--epochs", "2", *TINY], capsys)
    assert code == 0, err
    shown = [str(w.message) for w in caught] + [caplog.text, err]
    assert not any("ran out of data" in text for text in shown)


@pytest.mark.slow
def test_train_streams_csv_shards_end_to_end_without_data_warnings(tmp_path, capsys, caplog):
    rows = make_reviews(300)
    for i in range(3):
        write_csv(tmp_path / f"part-{i}.csv.gz", rows[i::3])
    run = RunDir(tmp_path / "r")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("INFO"):
        warnings.simplefilter("always")
        code, out, err = run_entry("train.py", ["--data", str(tmp_path / "part-*.csv.gz"), "--run-dir", str(run.path), "--epochs", "2",
                                                "--learning-rate", "0.02", *TINY], capsys)
    assert code == 0, err
    assert not any("ran out of data" in text for text in [str(w.message) for w in caught] + [caplog.text, err])
    data = json.loads(run.metrics.read_text())["data"]
    assert data["streamed"] and data["sizes"]["test"] > 0 and data["sizes"]["validation"] > 0


def test_train_bad_label_deep_in_a_stream_is_one_line_error(tmp_path, capsys):
    data = write_csv(tmp_path / "r.csv", make_reviews(300) + [("a fine film", "meh")])
    code, out, err = run_entry("train.py", ["--data", str(data), "--stream", "on", "--run-dir", str(tmp_path / "r"), "--epochs", "1", *TINY],
                               capsys)
    assert_one_line_error(code, err, "label is not one of")
    assert "meh" in err


# ---------------------------------------------------------------------------
# evaluate.py and export_model.py on broken runs


@pytest.fixture
def broken_run(run_dir, tmp_path):
    """Return a factory: a copy of the shared finished run with one file truncated."""

    def make(name: str) -> Path:
        copy = tmp_path / f"broken-{name.replace('.', '-')}"
        shutil.copytree(run_dir, copy)
        data = (copy / name).read_bytes()
        (copy / name).write_bytes(data[: len(data) // 3])
        return copy

    return make


@pytest.mark.parametrize("script", ["evaluate.py", "export_model.py"])
@pytest.mark.parametrize("truncated, message", [("model.keras", "cannot load model"), ("config.json", "config.json is unreadable")])
def test_truncated_run_files_are_one_line_errors(broken_run, tmp_path, capsys, script, truncated, message):
    run = broken_run(truncated)
    extra = ["--out", str(tmp_path / "rep")] if script == "evaluate.py" else ["--models-dir", str(tmp_path / "sm")]
    code, _, err = run_entry(script, [str(run), *extra], capsys)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "sm").exists() or not any((tmp_path / "sm").rglob("saved_model.pb"))


def test_export_of_an_unfinished_run_and_compare_with_data_are_refused(tmp_path, capsys, run_dir):
    code, _, err = run_entry("export_model.py", [str(tmp_path / "no-run")], capsys)
    assert_one_line_error(code, err, "is not a finished run")
    code, _, err = run_entry("evaluate.py", ["--compare", str(run_dir), "--data", "x.csv"], capsys)
    assert_one_line_error(code, err, "--data, --split and --threshold do not apply")
    code, _, err = run_entry("study.py", ["--run", f"lstm={tmp_path}", "--out", str(tmp_path / "study")], capsys)
    assert_one_line_error(code, err, "is not a finished run")


# ---------------------------------------------------------------------------
# predict.py


@pytest.fixture
def model_copy(saved_model, tmp_path):
    """A private copy of the shared exported model (lstm/1), safe to damage."""
    copy = tmp_path / "models"
    shutil.copytree(saved_model, copy)
    return copy


@pytest.mark.parametrize("flags, message", [
    (["--threshold", "1.5"], "argument --threshold: 1.5 is not between 0 and 1"),
    (["--threshold", "-0.1"], "is not between 0 and 1"),
    (["--batch-size", "0"], "argument --batch-size: 0 is not between 1 and 1,000,000"),
    (["--batch-size", "99999999999999999999"], "argument --batch-size: 99999999999999999999 is not between 1 and 1,000,000"),
    (["--workers", "100000"], "argument --workers: 100000 is not between 1 and 256"),
    (["--explain", "0"], "argument --explain: 0 is not between 1 and 100"),
    (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["--model", "transformer"], "no model 'transformer'"),
])
def test_predict_impossible_flags(model_copy, capsys, flags, message):
    code, out, err = run_entry("predict.py", ["a fine film", "--models-dir", str(model_copy), "--model", "lstm", *flags], capsys)
    assert_one_line_error(code, err, message)
    assert out == ""


def test_predict_damaged_savedmodels(model_copy, capsys):
    version = model_copy / "lstm" / "1"
    pb = version / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:200])
    # --engine savedmodel: by default the export's intact LiteRT twin would answer instead.
    code, _, err = run_entry("predict.py", ["a fine film", "--model", str(version), "--engine", "savedmodel"], capsys)
    assert_one_line_error(code, err, "cannot load model")
    shutil.rmtree(version / "variables")
    code, _, err = run_entry("predict.py", ["a fine film", "--model", str(version), "--engine", "savedmodel"], capsys)
    assert_one_line_error(code, err, "variables/ folder is missing")


@pytest.mark.slow
def test_predict_savedmodel_with_truncated_variables(model_copy, capsys):
    version = model_copy / "lstm" / "1"
    for data in (version / "variables").glob("variables.data*"):
        data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    code, _, err = run_entry("predict.py", ["a fine film", "--model", str(version), "--engine", "savedmodel"], capsys)
    assert_one_line_error(code, err, "is damaged or edited")  # named by the export's checksums before TensorFlow reads it


def test_predict_damaged_litert_files(model_copy, capsys):
    version = model_copy / "lstm" / "1"
    tflite = version / "assets.extra" / "classifier.tflite"
    tflite.write_bytes(tflite.read_bytes()[:100])
    code, _, err = run_entry("predict.py", ["a fine film", "--model", str(version), "--engine", "litert"], capsys)
    assert_one_line_error(code, err, "classifier.tflite is damaged")
    (version / "assets.extra" / "litert.json").unlink()
    code, _, err = run_entry("predict.py", ["a fine film", "--model", str(version), "--engine", "litert"], capsys)
    assert_one_line_error(code, err, "has no LiteRT model; add one with: python export_model.py --add-litert")


def test_export_model_add_litert_flags(model_copy, tmp_path, capsys):
    code, _, err = run_entry("export_model.py", [], capsys)
    assert_one_line_error(code, err, "give a run directory to export, or --add-litert")
    code, _, err = run_entry("export_model.py", ["--add-litert", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "is not an exported model (no saved_model.pb)")


def test_predict_csv_and_json_survive_commas_quotes_and_newlines(saved_model, capsys):
    reviews = ['Great, "truly" great\nfilm', "awful, awful; \"bad\"", "plain"]
    code, out, err = run_entry("predict.py", [*reviews, "--models-dir", str(saved_model), "--model", "lstm", "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["text"] for r in rows] == reviews and all(r["label"] in ("positive", "negative") for r in rows)
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    code, out, err = run_entry("predict.py", [*reviews, "--models-dir", str(saved_model), "--model", "lstm", "--format", "json"], capsys)
    assert code == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["text"] for o in objects] == reviews


# ---------------------------------------------------------------------------
# Real processes: SIGKILL and concurrency


def start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_two_exporters_of_one_run_make_two_complete_versions(run_dir, tmp_path):
    procs = [start("export_model.py", str(run_dir), "--models-dir", str(tmp_path)) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    versions = sorted(p.name for p in (tmp_path / "lstm").iterdir())
    assert versions == ["1", "2"]
    for v in versions:
        assert (tmp_path / "lstm" / v / "saved_model.pb").is_file()
        assert (tmp_path / "lstm" / v / "assets.extra" / "metadata.json").is_file()


@pytest.mark.slow
def test_sigkill_during_export_leaves_no_visible_version(run_dir, tmp_path, capsys):
    proc = start("export_model.py", str(run_dir), "--models-dir", str(tmp_path))
    deadline = time.time() + 120
    while not list((tmp_path / "lstm").glob(".tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    root = tmp_path / "lstm"
    assert list(root.glob(".tmp-*")), "the export finished before it could be killed"
    assert not [p for p in root.iterdir() if p.name.isdigit()]  # TF Serving sees nothing
    code, out, err = run_entry("export_model.py", [str(run_dir), "--models-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir()) == ["1"]  # the abandoned temp dir was cleaned up


@pytest.mark.slow
def test_sigkill_during_an_epoch_then_same_command_resumes(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", make_reviews(6000))
    run = RunDir(tmp_path / "run")
    epochs = 6
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--run-dir", str(run.path), "--epochs", str(epochs),
               "--patience", "9", "--vocab-size", "200", "--units", "64", "--max-len", "64", "--pretrain-dir", str(tmp_path / "pretrained")]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_epochs(run.path, 2, [proc], 240)
    os.killpg(proc.pid, signal.SIGKILL)  # somewhere in epoch 3 (or just before its backup of epoch 2)
    proc.wait()
    done = fitting.epochs_backed_up(run)
    assert 1 <= done < epochs and not run.metrics.exists()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run.path} after {done} finished epoch(s)" in resumed.stderr
    assert f"Epoch {done + 1}/{epochs}" in resumed.stdout and "Epoch 1/" not in resumed.stdout
    assert [int(row["epoch"]) for row in fitting.read_history(run)] == list(range(epochs))
    assert run.is_finished()


def test_evaluate_finds_named_models_from_any_directory(tmp_path, capsys, monkeypatch):
    """`evaluate.py lstm` means the project's saved_models/lstm, wherever it is started (as predict.py does)."""
    data = write_csv(tmp_path / "r.csv", [(t, "pos" if y else "neg") for t, y in make_reviews(60)])
    monkeypatch.chdir(tmp_path)  # no saved_models/ here
    code, out, err = run_entry("evaluate.py", ["lstm", "--data", str(data), "--split", "all", "--out", "rep"], capsys)
    assert code == 0, err
    assert (tmp_path / "rep" / "report.md").is_file()
    assert str(ROOT / "saved_models" / "lstm") in (tmp_path / "rep" / "report.md").read_text()


# ---------------------------------------------------------------------------
# train.py: a disk that fills up


def leftovers(root: Path) -> list[str]:
    """Return temporary files an atomic write would leave behind if it failed half-way."""
    return [str(p) for p in root.rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line_naming_the_path_then_the_same_command_resumes(tmp_path, capsys, csv_path, monkeypatch, caplog):
    """ENOSPC while backing up epoch 2: one error line with the path and free space; freed, the run resumes after epoch 1."""
    from sentiment import artifacts

    run = RunDir(tmp_path / "run")
    argv = ["--model", "lstm", "--data", str(csv_path), "--run-dir", str(run.path), "--epochs", "3", *TINY]
    real_sync = artifacts.sync_file

    def fills_at_second_backup(path: Path) -> None:
        if path.name.startswith(".state-00002"):
            raise OSError(28, "No space left on device")
        real_sync(path)

    monkeypatch.setattr(artifacts, "sync_file", fills_at_second_backup)
    code, _, err = run_entry("train.py", argv, capsys)
    assert_one_line_error(code, err, f"cannot write {run.backup / 'state-00002.npz'}: No space left on device (")
    assert "free there" in err and not leftovers(run.path)
    assert fitting.epochs_backed_up(run) == 1 and not run.is_finished()

    monkeypatch.setattr(artifacts, "sync_file", real_sync)  # space freed
    with caplog.at_level("INFO"):
        code, _, err = run_entry("train.py", argv, capsys)
    assert code == 0, err
    assert f"resuming {run.path} after 1 finished epoch(s)" in caplog.text
    assert [int(row["epoch"]) for row in fitting.read_history(run)] == [0, 1, 2] and run.is_finished()


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount (or resize) a tmpfs of ``size`` at ``path``; False where this process may not mount."""
    path.mkdir(exist_ok=True)
    already = os.path.ismount(path)
    options = f"remount,size={size}" if already else f"size={size}"
    command = ["mount", "-o", options, str(path)] if already else ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    try:
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("size", ["150k", "400k"])
def test_train_on_a_really_full_tmpfs_fails_cleanly_and_resumes_once_it_grows(tmp_path, capsys, csv_path, size):
    """The issue's case: a run dir on a tiny tmpfs; the disk fills somewhere in the run, then is made larger."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not mount_tmpfs(disk, size):
        pytest.skip("mounting a tmpfs needs root")
    try:
        run = RunDir(disk / "run")
        argv = ["--model", "lstm", "--data", str(csv_path), "--run-dir", str(run.path), "--epochs", "2", *TINY,
                "--vocab-size", "2000", "--embedding-dim", "16"]
        code, _, err = run_entry("train.py", argv, capsys)
        assert code == 2 and "Traceback" not in err, err
        assert_one_line_error(code, err, "No space left on device")
        assert "free there" in err and not leftovers(run.path)
        assert mount_tmpfs(disk, "50m")
        code, _, err = run_entry("train.py", argv, capsys)
        assert code == 0, err
        assert run.is_finished() and len(fitting.read_history(run)) == 2
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_evaluate_on_a_run_that_did_not_finish_says_so(interrupted_run, tmp_path, capsys):
    run, _ = interrupted_run
    code, _, err = run_entry("evaluate.py", [str(run.path), "--out", str(tmp_path / "rep")], capsys)
    assert_one_line_error(code, err, "is a training run that did not finish")
    assert "same --run-dir to resume" in err


@pytest.mark.slow
def test_predict_into_a_pipe_closed_early_ends_quietly(tmp_path):
    """`predict.py ... | head -1`: no 'Broken pipe' error, the exit code of a SIGPIPE death."""
    reviews = tmp_path / "many.txt"
    reviews.write_text("".join(f"a fine film, number {i}\n" for i in range(20_000)))
    result = subprocess.run(["bash", "-c", f"'{sys.executable}' predict.py --engine litert --file '{reviews}' | head -1; "
                                           "echo \"codes ${PIPESTATUS[*]}\" >&2"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert len(result.stdout.splitlines()) == 1
    assert "error" not in result.stderr.lower() and "Broken pipe" not in result.stderr, result.stderr
    assert "codes 141 0" in result.stderr
