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

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, make_reviews, wait_for_epochs, write_csv

from sentiment import models
from sentiment.config import make_config
from sentiment.errors import ConfigError
from sentiment.rundir import RunDir
from sentiment.training import distribute, fitting

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
from sentiment.commands import train
sys.exit(cli.run_main(train.main, sys.argv[1:]))
"""
# One worker of a sweep: train.py's main once per argument list, in one process so the cluster starts up once
# (MultiWorkerMirroredStrategy is made once per process: collective ops are set up at start-up); stops at the first failure.
SWEEP_WORKER = """
import json, sys
sys.path.insert(0, {root!r})
from sentiment import cli
from sentiment.training import distribute
from sentiment.commands import train
make_strategy, made = distribute.make_strategy, []
distribute.make_strategy = lambda config: made[0] if made else made.append(make_strategy(config)) or made[0]
for argv in json.loads(sys.argv[1]):
    code = cli.run_main(train.main, argv)
    if code:
        sys.exit(code)
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


def test_history_rows_read_back_like_csvlogger_rows(tmp_path):
    path = tmp_path / "history.csv"
    for epoch in range(2):
        fitting.write_history_row(path, {"val_loss": 0.5 - epoch / 10, "epoch": epoch, "loss": 0.6})
    rows = fitting.read_history_file(path)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[1]["val_loss"] == pytest.approx(0.4)
    assert path.read_text().splitlines()[0] == "epoch,loss,val_loss"


def test_a_replica_step_on_an_empty_batch_adds_nothing_but_still_applies_its_zero_gradients():
    config = make_config("lstm", vocab_size=50, embedding_dim=4, units=4, max_len=16)
    model = models.compile_model(models.build_model(config), config)
    train_step, eval_step = distribute.replica_steps(model, global_batch=4)
    # Traced as in the multi-worker loop, where the batch shapes are unknown: both branches of the tf.cond are built.
    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)]
    train, evaluate = (tf.function(step, input_signature=signature) for step in (train_step, eval_step))
    before = model.get_weights()
    empty = tf.zeros([0, 0], tf.int32), tf.zeros([0], tf.float32)  # what a worker whose shard ran out gets
    assert [float(t) for t in train(*empty)] == [0, 0, 0, 1]  # loss sum, correct, reviews, empty batches
    assert [float(t) for t in evaluate(*empty)] == [0, 0, 0, 1]
    assert int(model.optimizer.iterations.numpy()) == 1  # still applied: under a strategy, the all-reduce every replica joins
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    batch = tf.constant([[3, 4, 5], [6, 7, 0]], tf.int32), tf.constant([1.0, 0.0])
    loss, correct, reviews, empty_batches = (float(t) for t in train(*batch))
    assert loss > 0 and 0 <= correct <= 2 and reviews == 2 and empty_batches == 0
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert [float(t) for t in evaluate(*batch)][2:] == [2, 0]


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
    os.killpg(procs[1].pid, signal.SIGKILL)  # worker 1 dies mid-run: the chief stops with one line
    procs[1].wait()
    assert procs[0].wait(timeout=120) == 2
    chief_log = (tmp_path / "worker-0.log").read_text()
    assert "Traceback" not in chief_log and chief_log.strip().splitlines()[-1].startswith("error: worker 0 lost touch with the other workers")
    assert "relaunch every worker with the same command to resume" in chief_log
    assert not run.is_finished() and 2 <= len(fitting.read_history(run)) < epochs
    procs = start_workers(command, free_ports(2), tmp_path, tmp_path / "tmp-resumed")  # the same command restarts the cluster
    assert [p.wait(timeout=180) for p in procs] == [0, 0], (tmp_path / "worker-0.log").read_text()[-3000:]
    assert "resuming" in (tmp_path / "worker-1.log").read_text()
    assert [int(row["epoch"]) for row in fitting.read_history(run)] == list(range(epochs))
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


@pytest.mark.slow
def test_two_workers_finish_whichever_runs_out_of_batches_first(tmp_path):
    # Length-bucketed batches give the two shards of these generated sets different numbers of batches, so the worker
    # that runs out first gets empty batches from the distributed iterator (the old loop crashed in the LSTM on them).
    # 20 reviews (16 to train on, under one global batch of 32): worker 0 runs out of training batches;
    # 330: worker 1 of validation batches; 450: worker 1 of training batches. One cluster start-up for all three.
    sizes = [20, 330, 450]
    runs = [RunDir(tmp_path / f"run-{n}") for n in sizes]
    argvs = [["--data", str(write_csv(tmp_path / f"reviews-{n}.csv", make_reviews(n))), "--run-dir", str(run.path),
              "--epochs", "1", "--distribute", "multi_worker", *TINY] for n, run in zip(sizes, runs)]
    procs = start_workers([sys.executable, "-c", SWEEP_WORKER.format(root=str(ROOT)), json.dumps(argvs)], free_ports(2),
                          tmp_path, tmp_path / "tmp")
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    logs = [(tmp_path / f"worker-{i}.log").read_text(errors="replace") for i in range(2)]
    assert codes == [0, 0], "\n".join(f"--- worker {i}:\n{log[-2500:]}" for i, log in enumerate(logs))
    assert [run.is_finished() for run in runs] == [True] * len(sizes)
    empty = re.findall(r"(\d+) training and (\d+) validation batch\(es\) were empty", logs[0])
    assert [(int(t) > 0, int(v) > 0) for t, v in empty] == [(True, False), (False, True), (True, False)]  # the cases above
    assert len(set(fingerprints(tmp_path))) == 1  # the last run ended with the same weights on both workers
