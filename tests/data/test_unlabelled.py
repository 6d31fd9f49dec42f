"""Unlabelled review text for pretraining: each source's own, files given by flag, never a held-out review."""

from __future__ import annotations

import gzip

import pytest
from conftest import make_reviews, write_csv

from sentiment.config import make_config
from sentiment.data import unlabelled
from sentiment.errors import DataError


def test_aclimdb_folder_and_tarball_give_their_unsup_reviews(aclimdb_dir, aclimdb_tar):
    assert unlabelled.source_unlabelled(make_config(data=str(aclimdb_dir))) == ["unlabelled review"]
    assert unlabelled.source_unlabelled(make_config(data=str(aclimdb_dir.parent))) == ["unlabelled review"]
    assert unlabelled.source_unlabelled(make_config(data=str(aclimdb_tar))) == ["unlabelled review"]


def test_a_csv_source_has_no_unlabelled_reviews_of_its_own(csv_path):
    assert unlabelled.source_unlabelled(make_config(data=str(csv_path))) == []


def test_unlabelled_files_folders_and_globs(tmp_path):
    (tmp_path / "a.txt").write_text("first review\n\n  \nsecond review\r\n", encoding="utf-8")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress("third review\n".encode()))
    write_csv(tmp_path / "c.csv", [("fourth review", 1), ("", 0)])
    folder = tmp_path / "unsup"
    folder.mkdir()
    (folder / "1_0.txt").write_text("a whole review\nover two lines", encoding="utf-8")
    assert unlabelled.read_unlabelled(str(tmp_path / "a.txt")) == ["first review", "second review"]
    assert unlabelled.read_unlabelled(str(tmp_path / "*.txt*")) == ["first review", "second review", "third review"]
    assert unlabelled.read_unlabelled(str(tmp_path / "c.csv")) == ["fourth review"]
    assert unlabelled.read_unlabelled(str(folder)) == ["a whole review\nover two lines"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.txt", "no such file"),
    (lambda p: p / "nothing-*.txt", "no such file"),
    (lambda p: write_csv(p / "x.csv", [("a", 1)], header=("review", "label")), "needs a text column"),
    (lambda p: (p / "bad.txt").write_bytes(b"caf\xe9\n") and p / "bad.txt", "not UTF-8"),
])
def test_bad_unlabelled_input_is_one_line_data_error(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as error:
        unlabelled.read_unlabelled(str(make(tmp_path)))
    assert "\n" not in str(error.value)


def test_load_unlabelled_adds_source_and_flag_text_but_drops_held_out_reviews(aclimdb_dir, tmp_path):
    held_out = [text for text, _ in make_reviews(3, seed=9)]
    (tmp_path / "more.txt").write_text("\n".join(["one more review", held_out[1]]) + "\n", encoding="utf-8")
    config = make_config(data=str(aclimdb_dir), unlabelled=str(tmp_path / "more.txt"))
    assert unlabelled.load_unlabelled(config, ["a training review"], held_out) == [
        "a training review", "unlabelled review", "one more review"]


def test_held_out_reviews_are_dropped_as_the_model_reads_them():
    held_out = ["A great film.", "An awful <br />film"]
    texts = ["A great film. ", "a GREAT film", "an awful film", "An awful film!", "Another review"]
    assert unlabelled.drop_held_out(texts, held_out) == ["An awful film!", "Another review"]  # "!" is a token the model reads
