"""RunDir: the paths of a run, finished-run checks, refusing unsafe run directories, the lock."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sentiment.config import make_config
from sentiment.errors import ConfigError, ModelError
from sentiment.rundir import RunDir


def test_paths_and_finished(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.config == tmp_path / "r" / "config.json" and run.checkpoint == tmp_path / "r" / "checkpoints" / "best.keras"
    assert not run.is_finished()
    with pytest.raises(ModelError, match="is not a finished run"):
        run.require_finished()
    run.path.mkdir()
    for path in (run.config, run.model, run.metrics):
        path.write_text("{}")
    assert run.is_finished()


def test_check_can_train(tmp_path):
    config = make_config("lstm")
    RunDir(tmp_path / "new").check_can_train(config)  # does not exist: fine, and still does not exist
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty").check_can_train(config)
    started = RunDir(tmp_path / "started")
    started.path.mkdir()
    started.config.write_text('{"model": "lstm", "units": 7}')
    with pytest.raises(ConfigError, match="different settings \\(units\\)"):
        started.check_can_train(config)
    started.config.write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        started.check_can_train(config)


def test_lock_is_exclusive_across_processes_and_released_on_death(tmp_path):
    run = RunDir(tmp_path / "r")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; sys.path.insert(0, {os.getcwd()!r}); from sentiment.rundir import RunDir\n"
         f"with RunDir({str(run.path)!r}).lock():\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"in use by PID {holder.pid}"):
            with run.lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with run.lock():  # the dead holder's flock went with it
        assert run.lock_file.read_text().startswith(f"PID {os.getpid()}")


def test_an_output_dir_of_other_files_is_refused(tmp_path):
    from sentiment.rundir import check_output_dir

    writes = frozenset({"report.md", "metrics.json", "plot_roc.png"})
    check_output_dir(tmp_path / "new", writes, "metrics.json")  # absent, or empty: fine
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("my own notes")
    with pytest.raises(ConfigError, match="holds files this command did not write \\(report.md"):
        check_output_dir(tmp_path / "mine", writes, "metrics.json")
    (tmp_path / "mine" / "metrics.json").write_text("{}")
    check_output_dir(tmp_path / "mine", writes, "metrics.json")  # a report it wrote before: rewritten
    (tmp_path / "mine" / "plot_mine.png").write_text("")
    with pytest.raises(ConfigError, match="plot_mine.png"):
        check_output_dir(tmp_path / "mine", writes, "metrics.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(tmp_path / "file", writes, "metrics.json")
