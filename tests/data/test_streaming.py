"""Streamed CSV sources: the hash split, shards, bad rows deep in a stream, the stream choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
from conftest import make_reviews, write_csv

from sentiment.data import batching, streaming
from sentiment.errors import DataError


def write_shards(folder: Path, rows: list[tuple[str, object]], count: int) -> str:
    """Write ``rows`` as ``count`` gzipped CSV shards; return their glob."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        write_csv(folder / f"part-{i:03d}.csv.gz", rows[i::count])
    return str(folder / "part-*.csv.gz")


def stream_texts(config) -> dict[str, list[str]]:
    """Return the reviews of each streamed part, in order."""
    return {s.part: s.bounded(0).texts for s in streaming.load_streams(config)}


def test_streamed_split_is_seeded_disjoint_complete_and_the_same_for_shards(tmp_path, tiny_config):
    rows = make_reviews(400)
    single = write_csv(tmp_path / "all.csv", rows)
    parts = stream_texts(tiny_config(data=str(single), stream="on"))
    assert parts == stream_texts(tiny_config(data=str(single), stream="on"))  # deterministic, no shuffle of the file
    assert sorted(sum(parts.values(), [])) == sorted(t for t, _ in rows)  # every review in exactly one part
    assert 40 <= len(parts["test"]) <= 120 and 40 <= len(parts["validation"]) <= 120  # 20 % each, by hash
    sharded = stream_texts(tiny_config(data=write_shards(tmp_path / "shards", rows, 3), stream="on"))
    assert {k: sorted(v) for k, v in sharded.items()} == {k: sorted(v) for k, v in parts.items()}  # a review's part is its text's
    other_seed = stream_texts(tiny_config(data=str(single), stream="on", seed=7))
    assert other_seed["test"] != parts["test"]


def test_streamed_train_batches_hold_every_training_review_with_words(tmp_path, tiny_config):
    """Wordless reviews are dropped in one place (preprocessing.load_clean_splits), for streams as they are read."""
    from sentiment.data import preprocessing

    config = tiny_config(data=str(write_csv(tmp_path / "r.csv", make_reviews(300) + [("... --- ...", 1)] * 20)), stream="on")
    raw_train, _, _ = streaming.load_streams(config)
    train = preprocessing.load_clean_splits(config).train
    assert train.streamed
    preprocessor = preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(train.bounded(0).texts, config))
    batches = list(batching.make_train_dataset(train, preprocessor, config, batching.epoch_variable()))
    seen = sum(int(y.shape[0]) for _, y in batches)
    wordless = sum(t == "... --- ..." for t in raw_train.bounded(0).texts)
    assert wordless and seen == len(raw_train.bounded(0)) - wordless == len(train.bounded(0))
    assert all(int(tf.reduce_min(tf.math.count_nonzero(x, axis=1))) > 0 for x, _ in batches)


def test_a_stream_shards_like_a_split_in_memory(tmp_path, tiny_config):
    """Both kinds of source give worker i every count-th review of their part."""
    config = tiny_config(data=str(write_csv(tmp_path / "r.csv", make_reviews(200))), stream="on")
    train, _, _ = streaming.load_streams(config)
    whole = train.bounded(0)
    for index in range(3):
        assert train.shard(3, index).bounded(0).texts == whole.shard(3, index).texts == whole.texts[index::3]


def test_stream_choice(tmp_path, tiny_config, csv_path, aclimdb_dir):
    assert not streaming.should_stream(tiny_config())  # a small CSV stays in memory
    assert streaming.should_stream(tiny_config(stream="on"))
    assert streaming.should_stream(tiny_config(data=write_shards(tmp_path / "s", make_reviews(20), 2)))  # a glob streams
    with pytest.raises(DataError, match="reads CSV files only"):
        streaming.should_stream(tiny_config(data=str(aclimdb_dir), stream="on"))
    with pytest.raises(DataError, match="no CSV file matches"):
        streaming.load_streams(tiny_config(data=str(tmp_path / "none-*.csv"), stream="on"))


def test_bad_label_deep_in_a_stream_is_a_one_line_data_error(tmp_path, tiny_config):
    rows = make_reviews(200) + [("a fine film", "meh")]
    config = tiny_config(data=str(write_csv(tmp_path / "bad.csv", rows)), stream="on")
    with pytest.raises(DataError, match=r"label is not one of .*meh"):
        with streaming.stream_errors_explained(config.data):
            for stream in streaming.load_streams(config):
                stream.bounded(0)


def test_shards_with_different_columns_are_refused(tmp_path, tiny_config):
    write_csv(tmp_path / "a.csv", make_reviews(10))
    write_csv(tmp_path / "b.csv", make_reviews(10), header=("label", "text"))
    with pytest.raises(DataError, match="different columns"):
        streaming.load_streams(tiny_config(data=str(tmp_path / "*.csv")))
