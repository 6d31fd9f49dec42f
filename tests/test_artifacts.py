"""Atomic writes and provenance."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sentiment import artifacts
from sentiment.errors import ModelError


def test_write_text_replaces_whole_files_with_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    artifacts.write_text(path, "one")
    artifacts.write_text(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]  # no temp files left
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask(tmp_path)


def current_umask(probe_dir: Path) -> int:
    """Return the process umask without setting it (os.umask would, for every thread): /proc, else a probe file."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    probe = probe_dir / ".umask-probe"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        return 0o666 & ~stat.S_IMODE(probe.stat().st_mode)
    finally:
        probe.unlink()


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.json"
    artifacts.write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert artifacts.read_json(path) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    with artifacts.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.name.startswith(".")
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_read_json_of_a_truncated_file_is_a_model_error(tmp_path):
    (tmp_path / "m.json").write_text('{"accuracy": 0.9')
    with pytest.raises(ModelError, match="unreadable"):
        artifacts.read_json(tmp_path / "m.json")


def test_numbered_versions_and_library_versions(tmp_path):
    for name in ("10", "2", ".tmp-1-x", "notes"):
        (tmp_path / name).mkdir()
    assert [p.name for p in artifacts.numbered_versions(tmp_path)] == ["2", "10"]
    versions = artifacts.library_versions()
    assert {"python", "tensorflow", "keras", "numpy", "scikit-learn"} <= set(versions)


def test_a_read_only_file_system_is_named_not_told_to_make_room(tmp_path):
    import errno

    message = str(artifacts.write_error(tmp_path / "x.json", OSError(errno.EROFS, "Read-only file system")))
    assert "read-only" in message and "make room" not in message
