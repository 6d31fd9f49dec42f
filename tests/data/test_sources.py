"""In-memory sources (TFDS, CSV, aclImdb): splits, cleaning, errors, the offline TFDS path; CSV headers for both readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_reviews, write_csv

from sentiment.data import sources, streaming
from sentiment.errors import DataError


def test_csv_split_is_seeded_and_disjoint(csv_path, tiny_config):
    config = tiny_config()
    a, b = sources.load_splits(config), sources.load_splits(config)
    assert a.train.texts == b.train.texts and a.test.texts == b.test.texts
    assert a.sizes() == {"train": 120, "validation": 40, "test": 40}
    sets = [set(s.texts) for _, s in a.items()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    other = sources.load_splits(tiny_config(seed=7))
    assert other.test.texts != a.test.texts


def test_csv_accepts_numeric_labels_and_plain_csv(tmp_path, tiny_config):
    path = write_csv(tmp_path / "plain.csv", make_reviews(50))
    splits = sources.load_splits(tiny_config(data=str(path)))
    assert set(np.unique(splits.train.labels)) == {0, 1}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"review,sentiment\nnice,1\n", "lacks column(s) text, label"),
        (b"text,label\n", "no reviews"),
        (b"text,label\ngood film,maybe\n", "row 1 (line 2): label 'maybe'"),
        (b"text,label\n\xff\xfe bad bytes,1\n", "is not UTF-8 text"),
    ],
)
def test_bad_csv_gives_clear_error(tmp_path, tiny_config, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sources.load_splits(tiny_config(data=str(path)))


def test_corrupt_gzip_and_missing_file(tmp_path, tiny_config):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read CSV"):
        sources.load_splits(tiny_config(data=str(bad)))
    with pytest.raises(DataError, match="data not found"):
        sources.load_splits(tiny_config(data=str(tmp_path / "nope.csv")))
    with pytest.raises(DataError, match="unsupported data file"):
        (tmp_path / "x.json").write_text("{}")
        sources.load_splits(tiny_config(data=str(tmp_path / "x.json")))


def test_too_small_to_split(tmp_path, tiny_config):
    path = write_csv(tmp_path / "small.csv", make_reviews(3))
    with pytest.raises(DataError, match="too small"):
        sources.load_splits(tiny_config(data=str(path)))


def test_aclimdb_folder_and_tarball_agree(aclimdb_dir, aclimdb_tar, tiny_config):
    from_dir = sources.load_splits(tiny_config(data=str(aclimdb_dir)))
    from_tar = sources.load_splits(tiny_config(data=str(aclimdb_tar)))
    assert from_dir.sizes() == from_tar.sizes() == {"train": 32, "validation": 8, "test": 20}
    for (_, a), (_, b) in zip(from_dir.items(), from_tar.items()):
        assert a.texts == b.texts  # the same seeded split, whatever order the archive lists files in
        np.testing.assert_array_equal(a.labels, b.labels)
    assert "unlabelled review" not in from_dir.train.texts + from_tar.train.texts


def test_aclimdb_parent_folder_is_accepted(aclimdb_dir, tiny_config):
    assert sources.load_splits(tiny_config(data=str(aclimdb_dir.parent))).sizes()["test"] == 20


def test_tfds_source_with_mock_data(tiny_config, monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data replaces download and prepare, not the network probe that guards them.
    monkeypatch.setattr(sources, "check_download_reachable", lambda data_dir_root: None)
    with tfds.testing.mock_data(num_examples=40):
        splits = sources.load_splits(tiny_config(data="imdb", val_fraction=0.1))
    # mock_data serves num_examples for any split request, so slicing is checked below.
    assert splits.sizes() == {"train": 40, "validation": 40, "test": 40}
    assert all(isinstance(t, str) for t in splits.train.texts)
    assert set(np.unique(splits.train.labels)) <= {0, 1}


def test_tfds_validation_is_a_deterministic_slice_of_train():
    assert sources.tfds_split_names(0.1) == ["train[:90%]", "train[90%:]", "test"]
    with pytest.raises(DataError):
        sources.tfds_split_names(0.0)


# ---------------------------------------------------------------------------
# TFDS's real download-and-prepare code, offline, on a generated archive


def write_aclimdb_archive(path: Path, n_train: int = 40, n_test: int = 20, n_unsup: int = 5) -> Path:
    """Write a miniature ``aclImdb_v1.tar.gz`` in the layout TFDS's imdb_reviews builder reads."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
            for i, (text, label) in enumerate(make_reviews(n, seed)):
                data = text.encode("utf-8")
                member = tarfile.TarInfo(f"aclImdb/{split}/{'pos' if label else 'neg'}/{i}_{7 if label else 2}.txt")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        for i in range(n_unsup):
            data = f"unlabelled review number {i}".encode()
            member = tarfile.TarInfo(f"aclImdb/train/unsup/{i}_0.txt")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


@pytest.fixture
def offline(monkeypatch):
    """Point the reachability probe at a closed local port: the network is unreachable."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connecting is refused at once
    monkeypatch.setattr(sources, "TFDS_HOSTS", (("127.0.0.1", port),))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_tfds_prepares_imdb_from_a_manual_archive_offline(tmp_path, tiny_config, offline, monkeypatch):
    """tfds download_and_prepare really runs (no mock_data): archive in <data_dir>/downloads/manual/."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums

    manual = tmp_path / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    archive = write_aclimdb_archive(manual / sources.TFDS_ARCHIVE)
    # The generated archive is not the real one: register its checksum, as a user would for their own copy.
    info = checksums.compute_url_info(archive)
    builder_class = type(tfds.builder(sources.TFDS_NAME, data_dir=str(tmp_path / "tfds")))
    url = next(iter(builder_class.url_infos))
    monkeypatch.setattr(builder_class, "url_infos", {url: checksums.UrlInfo(info.size, info.checksum, sources.TFDS_ARCHIVE)})

    splits = sources.load_splits(tiny_config(data="imdb", tfds_data_dir=str(tmp_path / "tfds"), val_fraction=0.1))
    assert splits.sizes() == {"train": 36, "validation": 4, "test": 20}
    assert set(np.unique(splits.train.labels)) == {0, 1}
    assert not any("unlabelled" in t for t in splits.train.texts)  # train/unsup/ is its own split
    from sentiment.data import unlabelled  # and pretraining reads it: TFDS's unsupervised split

    config = tiny_config(data="imdb", tfds_data_dir=str(tmp_path / "tfds"))
    pretraining_text = unlabelled.load_unlabelled(config, splits.train.texts, splits.validation.texts + splits.test.texts)
    assert sorted(pretraining_text[len(splits.train):]) == [f"unlabelled review number {i}" for i in range(5)]
    assert (tmp_path / "tfds" / "imdb_reviews" / "plain_text").is_dir()  # prepared once, reused after
    again = sources.load_splits(tiny_config(data="imdb", tfds_data_dir=str(tmp_path / "tfds"), val_fraction=0.1))
    assert again.test.texts == splits.test.texts


def test_tfds_offline_fails_fast_naming_the_alternatives(tmp_path, tiny_config, offline):
    import time

    started = time.perf_counter()
    with pytest.raises(DataError) as error:
        sources.load_splits(tiny_config(data="imdb", tfds_data_dir=str(tmp_path / "empty")))
    assert time.perf_counter() - started < 10
    message = str(error.value)
    assert "no network" in message and "downloads/manual" in message and "--tfds-data-dir" in message
    assert "CSV" in message and "aclImdb" in message and "\n" not in message


@pytest.fixture
def hanging_dns(monkeypatch):
    """DNS lookups of ``*.invalid`` names hang until the test ends (as with a dead resolver); others resolve."""
    import socket
    import threading

    released = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            released.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)  # create_connection looks it up here
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    yield
    released.set()  # let the abandoned probe threads finish


def test_probe_with_hanging_dns_gives_up_at_one_overall_deadline(tmp_path, hanging_dns, monkeypatch):
    import time

    monkeypatch.setattr(sources, "TFDS_HOSTS", (("storage.invalid", 443), ("stanford.invalid", 80)))
    started = time.perf_counter()
    with pytest.raises(DataError) as error:
        sources.check_download_reachable(tmp_path, deadline=1.0)
    assert time.perf_counter() - started < 1.9  # one deadline for both hosts, probed at once, DNS included
    message = str(error.value)
    assert "no network" in message and "downloads/manual" in message and "\n" not in message
    assert "storage.invalid: no answer within 1 s" in message and "stanford.invalid: no answer within 1 s" in message


def test_train_data_imdb_with_hanging_dns_fails_within_10_seconds(tmp_path, tiny_config, hanging_dns, monkeypatch):
    import time

    monkeypatch.setattr(sources, "TFDS_HOSTS", (("storage.invalid", 443), ("stanford.invalid", 80)))
    started = time.perf_counter()
    with pytest.raises(DataError, match="no network"):
        sources.load_splits(tiny_config(data="imdb", tfds_data_dir=str(tmp_path / "empty")))
    assert time.perf_counter() - started < sources.PROBE_DEADLINE_SECONDS + 2 < 10


def test_one_answering_host_is_enough_while_another_hangs(tmp_path, hanging_dns, monkeypatch):
    import socket
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(sources, "TFDS_HOSTS", (("storage.invalid", 443), ("127.0.0.1", server.getsockname()[1])))
        started = time.perf_counter()
        sources.check_download_reachable(tmp_path, deadline=5.0)
    assert time.perf_counter() - started < 2.0  # the answer ends the wait; the hung lookup is abandoned


@pytest.mark.parametrize("stream", ["off", "on"])
def test_a_repeated_column_name_is_refused_by_both_readers(tmp_path, tiny_config, stream):
    """`text,label,text`: which text column to read would be a guess (DictReader silently took the last)."""
    path = tmp_path / "dup.csv"
    path.write_text("text,label,text\n" + "".join(f"review {i} good,{i % 2},\n" for i in range(40)))
    with pytest.raises(DataError, match="names column\\(s\\) text more than once"):
        config = tiny_config(data=str(path), stream=stream)
        streaming.load_streams(config) if stream == "on" else sources.load_splits(config)


@pytest.mark.parametrize("stream", ["off", "on"])
def test_a_csv_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path, tiny_config, stream):
    rows = make_reviews(60)
    path = write_csv(tmp_path / "excel.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    config = tiny_config(data=str(path), stream=stream)
    if stream == "on":
        texts = sorted(t for part in streaming.load_streams(config) for t in part.bounded(0).texts)
    else:
        texts = sorted(t for _, split in sources.load_splits(config).items() for t in split.texts)
    assert texts == sorted(t for t, _ in rows)


def test_a_missing_column_error_shows_the_names_found_quoted(tmp_path, tiny_config):
    path = tmp_path / "odd.csv"
    path.write_text("review ,label\nnice,1\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) text \\(found: 'review ', 'label'\\)"):
        sources.load_splits(tiny_config(data=str(path)))


def test_split_seed_fixes_the_split_whatever_the_training_seed(tiny_config):
    from sentiment.data import preprocessing

    first = preprocessing.load_clean_splits(tiny_config(seed=42))
    same = preprocessing.load_clean_splits(tiny_config(seed=43, split_seed=42))
    other = preprocessing.load_clean_splits(tiny_config(seed=43))
    assert same.test.texts == first.test.texts and same.validation.texts == first.validation.texts
    assert other.test.texts != first.test.texts
