"""tf.data batches: bucket widths for XLA and padding."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sentiment.data import batching


def test_fixed_shapes_pad_batches_to_bucket_widths(csv_path, tiny_config):
    """Under XLA every batch width is one of a few bucket widths; padding stays on the right and labels keep their order."""
    from sentiment.data import preprocessing

    config = tiny_config(max_len=40, batch_size=8)
    splits = preprocessing.load_clean_splits(config)
    preprocessor = preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(splits.train.texts, config))
    allowed = {w for w in batching.XLA_WIDTHS if w < 40} | {40}
    for ids, _ in batching.make_train_dataset(splits.train, preprocessor, config, batching.epoch_variable(), fixed_shapes=True):
        assert ids.shape[1] in allowed
    plain = [ids.numpy() for ids, _ in batching.make_eval_dataset(splits.test, preprocessor, config)]
    fixed = list(batching.make_eval_dataset(splits.test, preprocessor, config, fixed_shapes=True))
    for before, (after, _) in zip(plain, fixed):
        assert after.shape[1] in allowed
        np.testing.assert_array_equal(after.numpy()[:, : before.shape[1]], before)
        assert (after.numpy()[:, before.shape[1]:] == 0).all()


def test_pad_width_picks_the_next_width_and_keeps_overlong_rows():
    widths = tf.constant([4, 8], tf.int32)
    assert batching.pad_width(tf.ones((2, 3), tf.int32), widths).shape == (2, 4)
    assert batching.pad_width(tf.ones((2, 8), tf.int32), widths).shape == (2, 8)
    assert batching.pad_width(tf.ones((2, 11), tf.int32), widths).shape == (2, 11)  # beyond the largest: unchanged


# ---------------------------------------------------------------------------
# Streamed CSV sources
