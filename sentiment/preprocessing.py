"""Raw review text → token ids, one way for training and serving.

``make_preprocessor`` returns one Keras layer (a small functional model:
standardize → TextVectorization → TruncateTokens). The tf.data pipeline maps it
over batches of reviews, and the end-to-end / exported model calls the very same
layer, so training and serving see the same token ids by construction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment.artifacts import write_text
from sentiment.config import Config
from sentiment.input_pipeline import Split, Splits, check_splits, load_splits

log = logging.getLogger(__name__)

ADAPT_BATCH = 512  # reviews per batch when learning the vocabulary


@keras.saving.register_keras_serializable(package="sentiment", name="standardize")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop HTML line breaks and punctuation, keep ! and ? as tokens (tf.string → tf.string)."""
    text = tf.strings.lower(text, encoding="utf-8")  # not ASCII-only: "CAFÉ" → "café"
    text = tf.strings.regex_replace(text, "[’‘`´]", "'")  # typographic apostrophes: "don’t" → "don't"
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"<[^>]*>", " ")
    # "!" and "?" carry sentiment ("great!!" vs "great?"); every other mark is noise.
    text = tf.strings.regex_replace(text, r"([!?])", r" \1 ")
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{N}\s!?']", " ")  # Unicode letters and digits stay
    text = tf.strings.regex_replace(text, r"(^|\s)'+|'+(\s|$)", " ")  # quotes, not apostrophes
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def standardize_texts(texts: list[str]) -> list[str]:
    """Return the reviews as the models see them, as Python strings (for scikit-learn and checks)."""
    cleaned = []
    for start in range(0, len(texts), 4096):
        cleaned += [t.decode("utf-8") for t in standardize(tf.constant(texts[start : start + 4096])).numpy()]
    return cleaned


def token_lengths(texts: list[str]) -> np.ndarray:
    """Return each review's token count before truncation (int64 [n]); the vectorizer's split exactly."""
    counts = [
        tf.strings.split(standardize(tf.constant(texts[i : i + 4096]))).row_lengths().numpy()
        for i in range(0, len(texts), 4096)
    ]
    return np.concatenate(counts) if counts else np.zeros(0, np.int64)


@keras.saving.register_keras_serializable(package="sentiment")
class TruncateTokens(keras.layers.Layer):
    """Keep ``max_len`` token ids per right-padded row, from its head or its tail (int [b, t] → int [b, <=max_len])."""

    def __init__(self, max_len: int, keep: str = "head", **kwargs):
        super().__init__(**kwargs)
        self.max_len, self.keep = max_len, keep

    def call(self, token_ids: tf.Tensor) -> tf.Tensor:
        """Truncate each row; rows shorter than ``max_len`` pass through unchanged."""
        if self.keep == "head":
            return token_ids[:, : self.max_len]
        # Tail: row i keeps tokens [len_i - max_len, len_i), shifted left so padding stays on the right.
        lengths = keras.ops.sum(keras.ops.cast(keras.ops.not_equal(token_ids, 0), "int32"), axis=1)
        width = keras.ops.minimum(keras.ops.max(lengths), self.max_len)
        steps = keras.ops.arange(width, dtype="int32")[None, :]
        start = keras.ops.maximum(lengths - self.max_len, 0)[:, None]
        index = keras.ops.minimum(start + steps, keras.ops.shape(token_ids)[1] - 1)
        kept = keras.ops.take_along_axis(token_ids, index, axis=1)
        return keras.ops.where(steps < keras.ops.minimum(lengths, self.max_len)[:, None], kept, keras.ops.zeros_like(kept))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The batch size is kept; the length depends on the data."""
        return (input_shape[0], None)

    def get_config(self) -> dict:
        """Serialize max_len and keep with the layer."""
        return {**super().get_config(), "max_len": self.max_len, "keep": self.keep}


def make_vectorizer(config: Config, vocabulary: list[str] | None = None) -> keras.layers.TextVectorization:
    """Return a TextVectorization with the project's standardization; index 0 is padding, 1 is OOV."""
    return keras.layers.TextVectorization(
        max_tokens=config.vocab_size,
        standardize=standardize,
        split="whitespace",
        output_mode="int",
        vocabulary=vocabulary,
        name="vectorizer",
    )


def learn_vocabulary(texts: list[str], config: Config) -> list[str]:
    """Return the ``config.vocab_size`` most frequent tokens of ``texts`` (training reviews only), "" and [UNK] first."""
    vectorizer = make_vectorizer(config)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(ADAPT_BATCH))
    vocabulary = vectorizer.get_vocabulary()
    log.info("vocabulary: %d tokens from %d training reviews", len(vocabulary), len(texts))
    return vocabulary


def make_preprocessor(config: Config, vocabulary: list[str]) -> keras.Model:
    """Return the preprocessing layer: review strings [b] → token ids int32 [b, <=max_len], 0-padded on the right."""
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = make_vectorizer(config, vocabulary[2:])(text)  # TextVectorization adds "" and [UNK] itself
    ids = TruncateTokens(config.max_len, config.truncate, name="truncate")(ids)
    return keras.Model(text, keras.ops.cast(ids, "int32"), name="preprocessor")


def save_vocabulary(vocabulary: list[str], path: Path) -> None:
    """Write the vocabulary one token per line, without the implied padding and OOV entries."""
    write_text(path, "\n".join(vocabulary[2:]))


def load_vocabulary(path: Path) -> list[str]:
    """Read a vocabulary written by :func:`save_vocabulary` (with "" and [UNK] put back in front)."""
    text = path.read_text(encoding="utf-8")
    return ["", "[UNK]"] + (text.split("\n") if text else [])


def drop_wordless(split: Split, name: str) -> Split:
    """Drop reviews with no token left after standardization; a fully masked row breaks cuDNN."""
    if not len(split):
        return split
    keep = np.flatnonzero(token_lengths(split.texts) > 0)
    if len(keep) < len(split):
        log.warning("%s: skipped %d review(s) empty after standardization", name, len(split) - len(keep))
    return Split([split.texts[i] for i in keep], split.labels[keep])


def load_clean_splits(config: Config) -> Splits:
    """Load the configured data, drop reviews with no words, and check every split is usable."""
    loaded = load_splits(config)
    splits = Splits(*(drop_wordless(split, name) for name, split in loaded.items()))
    check_splits(splits)
    return splits
