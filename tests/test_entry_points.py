"""train.py / evaluate.py / study.py as users run them: clear one-line errors, and kill-then-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_reviews, write_csv
from sentiment import training

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "error: data not found"),
        (b"text,label\ngood,2\n", "error: CSV"),
        (b"words,label\ngood,1\n", "lacks column(s) text"),
    ],
)
def test_train_bad_data_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_bytes(content)
    result = run_script("train.py", "--data", str(path), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_unknown_model_and_missing_runs_are_one_line_errors(tmp_path):
    result = run_script("train.py", "--model", "transformer", "--data", "x.csv")
    assert result.returncode == 2 and "unknown model 'transformer'" in result.stderr and "Traceback" not in result.stderr
    result = run_script("evaluate.py", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "error: no model" in result.stderr and "Traceback" not in result.stderr
    result = run_script("study.py", "--run", f"lstm={tmp_path}", "--out", str(tmp_path / "study"))
    assert result.returncode == 2 and "is not a finished run" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigkill_during_an_epoch_then_same_command_resumes(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", make_reviews(6000))
    run_dir = tmp_path / "run"
    epochs = 6
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--run-dir", str(run_dir), "--epochs", str(epochs),
               "--patience", "9", "--vocab-size", "200", "--units", "64", "--max-len", "64"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while len(training.read_history(run_dir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # somewhere in epoch 3 (or just before its backup of epoch 2)
    proc.wait()
    done = training.epochs_backed_up(run_dir)
    assert 1 <= done < epochs and not (run_dir / "metrics.json").exists()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} after {done} finished epoch(s)" in resumed.stderr
    assert f"Epoch {done + 1}/{epochs}" in resumed.stdout and "Epoch 1/" not in resumed.stdout
    assert [int(row["epoch"]) for row in training.read_history(run_dir)] == list(range(epochs))
    assert (run_dir / "metrics.json").exists()


def test_export_model_script(run_dir, tmp_path):
    result = run_script("export_model.py", str(run_dir), "--export-dir", str(tmp_path), "--name", "imdb")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "imdb" / "1" / "saved_model.pb").exists() and "exported to" in result.stdout
    result = run_script("export_model.py", str(tmp_path / "no-run"))
    assert result.returncode == 2 and "is not a finished run" in result.stderr and "Traceback" not in result.stderr
