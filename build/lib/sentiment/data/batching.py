"""Reviews of any :class:`~sentiment.data.sources.Source` into tf.data batches for the models.

The records go through the model's own preprocessing layer (``sentiment.data.preprocessing``),
text → token ids, in parallel chunks; training batches are shuffled per epoch (seeded by the
epoch, for exact resume) and bucketed by length, so a 60-token review is not padded to 500.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from sentiment.config import Config
from sentiment.data.sources import Source

# Per-bucket upper bounds (tokens); batches hold reviews of similar length so a
# 60-token review is not padded to 500.
BUCKET_BOUNDARIES = (32, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 640, 768, 1024)
_ENCODE_CHUNK = 512  # reviews preprocessed per parallel map call
STREAM_SHUFFLE_BUFFER = 20_000  # reviews; a streamed epoch is shuffled within this window
# Under XLA every new batch shape is a new compilation (seconds each): id rows are padded to
# the next power of two (token ids: at most max_len), a few shapes instead of one per batch.
XLA_WIDTHS = tuple(2**k for k in range(6, 17))

# The preprocessing layer's output: token ids [b, t] (0-padded on the right), or with a wide
# branch a dict of those (TOKEN_IDS) and the review's word 1-2-gram ids (NGRAM_IDS).
Features = tf.Tensor | dict[str, tf.Tensor]
Encoder = Callable[[tf.Tensor], Features]
TOKEN_IDS, NGRAM_IDS = "token_ids", "ngram_ids"


def trim_padding(ids: tf.Tensor) -> tf.Tensor:
    """Drop the right padding of one row of ids (ids are never 0 inside a review): int [t] → int32 [<=t]."""
    return tf.cast(ids[: tf.math.count_nonzero(ids, dtype=tf.int32)], tf.int32)


def token_count(features: Features) -> tf.Tensor:
    """Return the number of recurrent steps of one encoded review (its token ids' length)."""
    return tf.shape(features[TOKEN_IDS] if isinstance(features, dict) else features)[0]


def encode(records: tf.data.Dataset, preprocess: Encoder) -> tf.data.Dataset:
    """Map (text, label) records to (features, label float32 []) per review, preprocessed in parallel chunks, padding removed."""
    ds = records.batch(_ENCODE_CHUNK).map(lambda t, y: (preprocess(t), y), num_parallel_calls=tf.data.AUTOTUNE)
    # Rows come back padded to the longest of their chunk.
    return ds.unbatch().map(lambda x, y: (tf.nest.map_structure(trim_padding, x), y))


def epoch_variable() -> tf.Variable:
    """Return the int64 variable that tells a training pipeline which epoch it is shuffling for (0 to start)."""
    return tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")


def make_train_dataset(split: Source, preprocess: Encoder, config: Config, epoch: tf.Variable,
                       fixed_shapes: bool = False) -> tf.data.Dataset:
    """Shuffled, length-bucketed, right-padded batches: features [b, t] int32, labels [b] float32.

    Each pass is shuffled with a seed made of ``config.seed`` and the value of ``epoch`` when
    the pass begins (training.ShuffleEpoch sets it), so epoch k sees the same order whether
    or not the run was interrupted and resumed before it. In memory the encoded reviews are
    cached and shuffled whole; a stream is shuffled within a window of STREAM_SHUFFLE_BUFFER
    reviews and encoded anew each epoch (flat memory). ``fixed_shapes`` pads each batch to its
    bucket's width instead of its longest review, so an XLA-compiled step sees a bounded set of shapes.
    """
    streamed = split.streamed
    cached = None if streamed else encode(split.records(), preprocess).cache()

    def one_epoch(_: tf.Tensor) -> tf.data.Dataset:
        # A tensor seed next to a global seed of 0 trips a Python bool() inside TF's get_seed; this
        # function's graph needs no global seed (config.seed is folded in), so it gets none.
        tf.compat.v1.get_default_graph().seed = None
        seed = tf.constant(config.seed, tf.int64) * 1_000_003 + epoch.read_value()  # read as each pass begins
        if streamed:
            return encode(split.records().shuffle(STREAM_SHUFFLE_BUFFER, seed=seed), preprocess)
        return cached.shuffle(len(split), seed=seed)

    ds = tf.data.Dataset.range(1).flat_map(one_epoch)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < config.max_len] + [config.max_len + 1]
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda x, y: token_count(x),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[config.batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,  # pad to the longest review of the batch
    )
    return with_fixed_shapes(ds, config).prefetch(tf.data.AUTOTUNE) if fixed_shapes else ds.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(split: Source, preprocess: Encoder, config: Config, fixed_shapes: bool = False) -> tf.data.Dataset:
    """Batches in the split's order (so predictions align with labels), padded per batch (in memory: cached, of known length)."""
    if split.streamed:
        ds = encode(split.records(), preprocess).padded_batch(config.batch_size)
        return (with_fixed_shapes(ds, config) if fixed_shapes else ds).prefetch(tf.data.AUTOTUNE)
    ds = encode(split.records(), preprocess).cache().padded_batch(config.batch_size)
    if fixed_shapes:
        ds = with_fixed_shapes(ds, config)
    # A known number of batches: Keras then never warns that the input "ran out of data".
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-len(split) // config.batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE)


def with_fixed_shapes(ds: tf.data.Dataset, config: Config) -> tf.data.Dataset:
    """Pad every batch's id matrices on the right to a power-of-two width (token ids: capped at max_len)."""
    token_widths = tf.constant(sorted({w for w in XLA_WIDTHS if w < config.max_len} | {config.max_len}), tf.int32)
    ngram_widths = tf.constant(XLA_WIDTHS, tf.int32)

    def pad(features: Features, y: tf.Tensor) -> tuple[Features, tf.Tensor]:
        if not isinstance(features, dict):
            return pad_width(features, token_widths), y
        return {k: pad_width(v, token_widths if k == TOKEN_IDS else ngram_widths) for k, v in features.items()}, y

    return ds.map(pad, num_parallel_calls=tf.data.AUTOTUNE)


def pad_width(ids: tf.Tensor, widths: tf.Tensor) -> tf.Tensor:
    """Pad int [b, t] with zeros to [b, w], w the smallest of ``widths`` ≥ t (t itself beyond the largest)."""
    width = tf.shape(ids)[1]
    index = tf.minimum(tf.searchsorted(widths, tf.reshape(width, [1]))[0], tf.size(widths) - 1)
    target = tf.maximum(widths[index], width)
    return tf.pad(ids, [[0, 0], [0, target - width]])
