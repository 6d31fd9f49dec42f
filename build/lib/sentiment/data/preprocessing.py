"""Raw review text → model inputs, one way for training and serving.

``make_preprocessor`` returns one Keras layer (a small functional model:
standardize → TextVectorization → TruncateTokens, plus the word 1-2-gram ids of
the wide branch when the config has one). The tf.data pipeline maps it over
batches of reviews, and the end-to-end / exported model calls the very same
layer, so training and serving see the same ids by construction. ``NgramTfIdf``
turns the n-gram ids into TF-IDF features inside the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment.artifacts import write_text
from sentiment.config import Config
from sentiment.data import streaming
from sentiment.data.batching import NGRAM_IDS, TOKEN_IDS
from sentiment.data.sources import Splits, check_splits

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


def make_ngram_vectorizer(config: Config, vocabulary: list[str] | None = None) -> keras.layers.TextVectorization:
    """Return the wide branch's vectorizer: every word 1- and 2-gram of a review as an id (0 padding, 1 OOV)."""
    return keras.layers.TextVectorization(
        max_tokens=config.ngram_vocab_size,
        standardize=standardize,
        split="whitespace",
        ngrams=2,
        output_mode="int",
        vocabulary=vocabulary,
        name="ngram_vectorizer",
    )


def adapt_vocabulary(vectorizer: keras.layers.TextVectorization, texts: list[str]) -> list[str]:
    """Return the most frequent tokens of ``texts`` (training reviews only) for ``vectorizer``, "" and [UNK] first."""
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(ADAPT_BATCH))
    vocabulary = vectorizer.get_vocabulary()
    log.info("%s: %d entries from %d training reviews", vectorizer.name, len(vocabulary), len(texts))
    return vocabulary


def learn_vocabulary(texts: list[str], config: Config) -> list[str]:
    """Return the ``config.vocab_size`` most frequent words of the training reviews, "" and [UNK] first."""
    return adapt_vocabulary(make_vectorizer(config), texts)


def learn_ngram_vocabulary(texts: list[str], config: Config) -> list[str]:
    """Return the ``config.ngram_vocab_size`` most frequent word 1-2-grams of the training reviews, "" and [UNK] first."""
    return adapt_vocabulary(make_ngram_vectorizer(config), texts)


def inverse_document_frequency(texts: list[str], config: Config, ngram_vocabulary: list[str]) -> np.ndarray:
    """Return smoothed idf float32 [ngram_vocab_size] over ``texts`` (scikit-learn's formula).

    0 for padding, OOV and the unused slots of a vocabulary smaller than ``ngram_vocab_size``.
    """
    vectorizer = make_ngram_vectorizer(config, ngram_vocabulary[2:])
    size = config.ngram_vocab_size
    df = np.zeros(size, np.int64)
    for start in range(0, len(texts), ADAPT_BATCH):
        ids = tf.cast(vectorizer(tf.constant(texts[start : start + ADAPT_BATCH])), tf.int64)
        # One entry per (review, distinct id): the ids' document frequency in this batch.
        present = tf.sparse.bincount(ids, minlength=size, maxlength=size, binary_output=True, axis=-1)
        df += tf.math.bincount(tf.cast(present.indices[:, 1], tf.int32), minlength=size, maxlength=size, dtype=tf.int64).numpy()
    idf = np.log((1 + len(texts)) / (1 + df)) + 1
    idf[:2] = 0  # padding and out-of-vocabulary n-grams carry no evidence
    idf[len(ngram_vocabulary) :] = 0
    return idf.astype(np.float32)


def make_preprocessor(config: Config, vocabulary: list[str], ngram_vocabulary: list[str] | None = None) -> keras.Model:
    """Return the preprocessing layer: review strings [b] → token ids int32 [b, <=max_len], 0-padded on the right.

    With a wide branch (``config.ngram_vocab_size > 0``) it returns a dict instead:
    ``token_ids`` as above and ``ngram_ids`` int32 [b, n], the 1-2-gram ids of the whole review.
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = make_vectorizer(config, vocabulary[2:])(text)  # TextVectorization adds "" and [UNK] itself
    ids = TruncateTokens(config.max_len, config.truncate, name="truncate")(ids)
    token_ids = keras.ops.cast(ids, "int32")
    if not config.ngram_vocab_size:
        return keras.Model(text, token_ids, name="preprocessor")
    if ngram_vocabulary is None:
        raise ValueError("a config with a wide branch needs its n-gram vocabulary")
    ngram_ids = keras.ops.cast(make_ngram_vectorizer(config, ngram_vocabulary[2:])(text), "int32")
    return keras.Model(text, {TOKEN_IDS: token_ids, NGRAM_IDS: ngram_ids}, name="preprocessor")


@keras.saving.register_keras_serializable(package="sentiment")
class NgramTfIdf(keras.layers.Layer):
    """Bag of n-gram ids → L2-normalized sublinear TF-IDF features (int [b, n] → sparse float32 [b, size]).

    The features are scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``, times ``scale``:
    unit-norm rows have entries of ~0.05, which a linear layer under Adam at the recurrent
    branch's learning rate would fit far too slowly. The idf is a non-trainable weight,
    set from the training reviews, so saved and exported models carry it. The output is a
    SparseTensor (a review has a few hundred of the 200,000 n-grams): the linear layer on it
    then costs a sparse matmul instead of a dense [b, 200,000] pass, ~7× faster per step.
    TensorFlow has no XLA kernel for its sparse bincount, so wide models train without XLA.
    """

    def __init__(self, size: int, scale: float = 1.0, idf: np.ndarray | None = None, **kwargs):
        """``idf`` float32 [size] from the training reviews; without one (a model about to be loaded) 1, and 0 for padding and OOV."""
        super().__init__(**kwargs)
        self.size, self.scale = size, scale
        if idf is None:
            idf = np.ones(size, np.float32)
            idf[:2] = 0
        initializer = keras.initializers.Constant(idf)
        self.idf = self.add_weight(shape=(size,), initializer=initializer, trainable=False, name="idf", dtype="float32")

    def call(self, ngram_ids: tf.Tensor) -> tf.SparseTensor:
        """Count each distinct id per row (padding included, its idf is 0), weight and normalize."""
        counts = tf.sparse.bincount(tf.cast(ngram_ids, tf.int64), minlength=self.size, maxlength=self.size, axis=-1)
        idf = tf.concat([[0.0], self.idf[1:]], axis=0)  # padding never counts, whatever the idf says
        rows, columns = counts.indices[:, 0], counts.indices[:, 1]
        values = (1.0 + tf.math.log(tf.cast(counts.values, tf.float32))) * tf.gather(idf, columns)
        norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(values), rows, tf.shape(ngram_ids, out_type=tf.int64)[0]))
        values = self.scale * values / tf.maximum(tf.gather(norms, rows), 1e-12)  # l2_normalize's epsilon
        return tf.SparseTensor(counts.indices, values, counts.dense_shape)

    def compute_output_spec(self, ngram_ids: keras.KerasTensor) -> keras.KerasTensor:
        """One sparse feature per vocabulary entry."""
        return keras.KerasTensor((ngram_ids.shape[0], self.size), dtype="float32", sparse=True)

    def get_config(self) -> dict:
        """Serialize the size and scale; the idf travels with the weights."""
        return {**super().get_config(), "size": self.size, "scale": self.scale}


def save_vocabulary(vocabulary: list[str], path: Path) -> None:
    """Write the vocabulary one token per line, without the implied padding and OOV entries."""
    write_text(path, "\n".join(vocabulary[2:]))


def load_vocabulary(path: Path) -> list[str]:
    """Read a vocabulary written by :func:`save_vocabulary` (with "" and [UNK] put back in front)."""
    text = path.read_text(encoding="utf-8")
    return ["", "[UNK]"] + (text.split("\n") if text else [])


def has_words(texts: tf.Tensor) -> tf.Tensor:
    """Return which reviews keep a token after standardization (tf.string [b] → bool [b])."""
    return tf.strings.length(standardize(texts)) > 0


def load_clean_splits(config: Config) -> Splits:
    """Load the configured reviews (in memory or streamed) without the wordless ones, and check the splits are usable.

    The one place such reviews are dropped: a review with no token is a fully masked row, which breaks cuDNN.
    """
    splits = streaming.load(config).where(has_words, "with no word left after standardization")
    check_splits(splits)
    return splits
