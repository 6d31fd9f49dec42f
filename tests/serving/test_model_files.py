"""A model folder from a stranger: paths stay inside it, reads are bounded, every file is checked against the export's checksums."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sentiment.errors import ModelError
from sentiment.serving import model_files


def make_version(root: Path) -> Path:
    """A fake export: a few files and their checksums."""
    version = root / "m" / "1"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"graph")
    (version / "variables" / "variables.index").write_bytes(b"index")
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "metadata.json").write_text("{}")
    model_files.write_checksums(version)
    return version


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "a/../../b", "..", "", "\\etc\\passwd", 5, None, ["x"]])
def test_a_name_that_leaves_the_folder_or_is_no_name_is_refused(tmp_path, name):
    with pytest.raises(ModelError):
        model_files.inside(tmp_path, name)


def test_a_symlink_out_of_the_folder_is_refused_and_one_inside_is_not(tmp_path):
    (tmp_path / "out").symlink_to("/etc/passwd")
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    with pytest.raises(ModelError, match="leads outside"):
        model_files.inside(tmp_path, "out")
    assert model_files.inside(tmp_path, "alias.txt") == tmp_path / "alias.txt"


def test_devices_fifos_and_oversized_files_are_not_read(tmp_path):
    with pytest.raises(ModelError, match="not a regular file"):
        model_files.read_bounded("/dev/zero")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ModelError, match="not a regular file"):  # and the open does not block
        model_files.file_digest(tmp_path / "fifo")
    (tmp_path / "big.json").write_text("[" + "0," * 100 + "0]")
    with pytest.raises(ModelError, match="over the 50-byte bound"):
        model_files.read_bounded(tmp_path / "big.json", 50)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="must hold a JSON object, not list"):
        model_files.read_object(tmp_path / "list.json")


def test_an_npz_whose_arrays_declare_too_much_is_refused(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros(1000, np.float32))
    model_files.check_npz(tmp_path / "a.npz")
    with pytest.raises(ModelError, match="over the 1000-byte bound"):
        model_files.check_npz(tmp_path / "a.npz", limit=1000)
    (tmp_path / "b.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable .npz"):
        model_files.check_npz(tmp_path / "b.npz")
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", b"\0" * 5_000_000)  # compresses to a few KB
    with pytest.raises(ModelError, match="declare 5000000 bytes"):
        model_files.check_npz(tmp_path / "bomb.npz", limit=1_000_000)


def test_checksums_cover_every_file_and_name_the_one_edited(tmp_path):
    version = make_version(tmp_path)
    listed = json.loads((version / model_files.CHECKSUMS_FILE).read_text())["files"]
    assert sorted(listed) == ["assets.extra/metadata.json", "saved_model.pb", "variables/variables.index"]
    model_files.verify_files(version)
    (version / "saved_model.pb").write_bytes(b"GRAPH")  # same size, other bytes
    with pytest.raises(ModelError, match="saved_model.pb is damaged or edited: its SHA-256"):
        model_files.verify_files(version)
    (version / "saved_model.pb").write_bytes(b"graph!")
    with pytest.raises(ModelError, match="saved_model.pb is damaged or edited: 6 bytes"):
        model_files.verify_files(version, ["saved_model.pb"])
    model_files.verify_files(version, ["variables/variables.index"])  # only what an engine reads is read
    with pytest.raises(ModelError, match="not listed"):
        model_files.verify_files(version, ["assets.extra/other.json"])


def test_a_checksums_file_cannot_point_outside_or_be_malformed(tmp_path):
    version = make_version(tmp_path)
    path = version / model_files.CHECKSUMS_FILE
    path.write_text(json.dumps({"format": 1, "files": {"../../../../etc/passwd": {"bytes": 1, "sha256": "x"}}}))
    with pytest.raises(ModelError, match="points outside"):
        model_files.verify_files(version)
    for bad in ([], {"format": 1, "files": []}, {"format": 1, "files": {"saved_model.pb": "x"}}, {"format": 9, "files": {}}):
        path.write_text(json.dumps(bad))
        with pytest.raises(ModelError):
            model_files.verify_files(version)


def test_an_export_without_checksums_is_refused_unless_trusted(tmp_path, caplog):
    version = make_version(tmp_path)
    (version / model_files.CHECKSUMS_FILE).unlink()
    with pytest.raises(ModelError, match="--add-checksums"):
        model_files.verify_files(version)
    with caplog.at_level(logging.WARNING):
        model_files.verify_files(version, trust_model=True)
    assert "loading it anyway (--trust-model)" in caplog.text


def test_each_file_is_hashed_once_per_process_while_unchanged(tmp_path, monkeypatch):
    version = make_version(tmp_path)
    hashed = []
    real = model_files.file_digest
    monkeypatch.setattr(model_files, "file_digest", lambda path, *a: hashed.append(Path(path).name) or real(path, *a))
    model_files.verify_files(version)
    model_files.verify_files(version)
    assert sorted(hashed) == ["metadata.json", "saved_model.pb", "variables.index"]


def new_process(monkeypatch, cache: Path | str) -> None:
    """Forget this process's digests, as a new process would, and read remembered ones from ``cache``."""
    monkeypatch.setenv(model_files.CACHE_ENV, str(cache))
    model_files.remembered_digests.cache_clear()


def counting_hashes(monkeypatch) -> list[str]:
    hashed, real = [], model_files.file_digest
    monkeypatch.setattr(model_files, "file_digest", lambda path, *a: hashed.append(Path(path).name) or real(path, *a))
    return hashed


def test_a_later_process_does_not_hash_unchanged_files_again(tmp_path, monkeypatch):
    version = make_version(tmp_path)
    monkeypatch.setattr(model_files, "RACY_SECONDS", -1)  # the files were written a moment ago
    hashed = counting_hashes(monkeypatch)
    new_process(monkeypatch, tmp_path / "cache")
    model_files.verify_files(version)
    new_process(monkeypatch, tmp_path / "cache")
    model_files.verify_files(version)
    assert sorted(hashed) == ["metadata.json", "saved_model.pb", "variables.index"]
    assert len(json.loads((tmp_path / "cache" / "digests.json").read_text())) == 3


def test_an_edit_that_keeps_size_and_modification_time_is_still_caught(tmp_path, monkeypatch):
    version = make_version(tmp_path)
    monkeypatch.setattr(model_files, "RACY_SECONDS", -1)
    new_process(monkeypatch, tmp_path / "cache")
    model_files.verify_files(version)
    pb = version / "saved_model.pb"
    before = pb.stat()
    pb.write_bytes(b"GRAPH")  # same size
    os.utime(pb, ns=(before.st_atime_ns, before.st_mtime_ns))  # the modification time set back; the change time cannot be
    new_process(monkeypatch, tmp_path / "cache")
    with pytest.raises(ModelError, match="saved_model.pb is damaged or edited"):
        model_files.verify_files(version)


def test_a_file_changed_just_before_it_was_hashed_is_remembered_in_this_process_only(tmp_path, monkeypatch):
    version = make_version(tmp_path)  # just written: within RACY_SECONDS
    hashed = counting_hashes(monkeypatch)
    new_process(monkeypatch, tmp_path / "cache")
    model_files.verify_files(version)
    model_files.verify_files(version)
    new_process(monkeypatch, tmp_path / "cache")
    model_files.verify_files(version)
    assert len(hashed) == 6 and not (tmp_path / "cache" / "digests.json").exists()


@pytest.mark.parametrize("cache", ["", "file", "damaged"])
def test_no_cache_an_unwritable_or_a_damaged_one_only_costs_hashing(tmp_path, monkeypatch, cache):
    version = make_version(tmp_path)
    monkeypatch.setattr(model_files, "RACY_SECONDS", -1)
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "digests.json").write_text('{"x": [1, 2')
    folder = {"": "", "file": tmp_path / "file", "damaged": tmp_path / "damaged"}[cache]
    for _ in range(2):
        new_process(monkeypatch, folder)
        model_files.verify_files(version)
    (version / "saved_model.pb").write_bytes(b"GRAPH")
    new_process(monkeypatch, folder)
    with pytest.raises(ModelError, match="damaged or edited"):
        model_files.verify_files(version)


def test_the_shipped_exports_carry_checksums_that_hold():
    root = Path(__file__).resolve().parents[2] / "saved_models"
    versions = sorted(p.parent.parent for p in root.glob(f"*/*/{model_files.CHECKSUMS_FILE}"))
    assert len(versions) == len(list(root.glob("*/*/saved_model.pb"))) >= 5
    for version in versions:
        model_files.verify_files(version, model_files.savedmodel_files(version)[:1])
