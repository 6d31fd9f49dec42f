"""tf.distribute: strategy choice, TF_CONFIG checks, and real training on loopback (two workers) and two logical CPUs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_reviews, wait_for_epochs, write_csv
from sentiment import distribute, training
from sentiment.errors import ConfigError
from sentiment.models import make_config
from sentiment.rundir import RunDir

TINY = ["--model", "lstm", "--vocab-size", "200", "--embedding-dim", "8", "--units", "8", "--max-len", "48", "--batch-size", "16",
        "--learning-rate", "0.01", "--lr-decay", "1.0"]
# Run train.py with the one CPU split into two logical devices, as MirroredStrategy's test bed.
TWO_CPUS = """
import sys
sys.path.insert(0, {root!r})
from sentiment import cli
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train
sys.exit(cli.run_main(train.main, sys.argv[1:]))
"""


def test_off_and_auto_without_gpus_use_the_default_strategy():
    assert distribute.resolve(make_config("lstm", distribute="auto")) == "off"
    assert distribute.resolve(make_config("lstm", distribute="mirrored")) == "mirrored"


@pytest.mark.parametrize("tf_config", ["", "not json", '{"cluster": {"worker": ["a:1"]}}',
                                       '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'])
def test_multi_worker_needs_a_sound_tf_config(monkeypatch, tf_config):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.make_strategy(make_config("lstm", distribute="multi_worker"))


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="distribute='ring' is invalid"):
        make_config("lstm", distribute="ring")


def test_stopping_follows_early_stopping_and_the_epoch_budget():
    config = make_config("lstm", epochs=5, patience=2)
    state = distribute.LoopState.create()
    assert not distribute.stopped(state, config)
    state.wait.assign(1)
    assert not distribute.stopped(state, config)
    state.wait.assign(2)
    assert distribute.stopped(state, config)
    state.wait.assign(0)
    state.epoch.assign(5)
    assert distribute.stopped(state, config)


def test_history_rows_read_back_like_csvlogger_rows(tmp_path):
    path = tmp_path / "history.csv"
    for epoch in range(2):
        training.write_history_row(path, {"val_loss": 0.5 - epoch / 10, "epoch": epoch, "loss": 0.6})
    rows = training.read_history_file(path)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[1]["val_loss"] == pytest.approx(0.4)
    assert path.read_text().splitlines()[0] == "epoch,loss,val_loss"


def free_ports(n: int) -> list[int]:
    """Return ``n`` TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(command: list[str], ports: list[int], logs: Path, scratch: Path) -> list[subprocess.Popen]:
    """Start one train.py per port with the TF_CONFIG of a loopback cluster and TMPDIR ``scratch``; output to logs/worker-<i>.log."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    scratch.mkdir()
    procs = []
    for index in range(len(ports)):
        env = {**os.environ, "TMPDIR": str(scratch),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = (logs / f"worker-{index}.log").open("a")
        procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def fingerprints(logs: Path) -> list[str]:
    """Return each worker's last logged final-weights fingerprint."""
    found = []
    for log in sorted(logs.glob("worker-*.log")):
        found.append(re.findall(r"final weights fingerprint (\w+)", log.read_text(errors="replace"))[-1])
    return found


@pytest.mark.slow
def test_two_workers_on_loopback_train_alike_resume_after_sigkill_and_only_the_chief_writes(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", make_reviews(2400))
    run = RunDir(tmp_path / "run")
    epochs = 5
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--run-dir", str(run.path), "--epochs", str(epochs),
               "--patience", "9", "--distribute", "multi_worker", *TINY]
    procs = start_workers(command, free_ports(2), tmp_path, tmp_path / "tmp-killed")
    wait_for_epochs(run.path, 2, procs, 120)
    for p in procs:  # both workers die mid-run
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert not run.is_finished() and 2 <= len(training.read_history(run)) < epochs
    procs = start_workers(command, free_ports(2), tmp_path, tmp_path / "tmp-resumed")  # the same command restarts the cluster
    assert [p.wait(timeout=180) for p in procs] == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    assert "resuming" in (tmp_path / "worker-1.log").read_text()
    assert [int(row["epoch"]) for row in training.read_history(run)] == list(range(epochs))
    assert run.is_finished() and not run.backup.exists()
    first, second = fingerprints(tmp_path)
    assert first == second  # synchronous training: the same weights on both workers
    # Worker 1 trained in a scratch dir of its own under TMPDIR: there while it ran (SIGKILL left it), removed once it finished.
    def scratch_dirs(tmpdir: Path) -> list[str]:
        return [p.name.rsplit("-", 1)[0] for p in tmpdir.iterdir() if p.name.startswith("worker-")]

    assert scratch_dirs(tmp_path / "tmp-killed") == ["worker-1"] and scratch_dirs(tmp_path / "tmp-resumed") == []
    assert json.loads(run.metrics.read_text())["accuracy"] >= 0.9


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_learns_a_separable_set(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", make_reviews(600))
    run = RunDir(tmp_path / "run")
    result = subprocess.run([sys.executable, "-c", TWO_CPUS.format(root=str(ROOT)), "--data", str(data), "--run-dir", str(run.path),
                             "--epochs", "6", "--distribute", "mirrored", *TINY],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distribute mirrored: 2 replica(s) in sync, global batch 32" in result.stderr
    assert run.is_finished()
    assert json.loads(run.metrics.read_text())["accuracy"] >= 0.9
