"""Language-model pretraining of the classifier's embedding and recurrent layer on review text without labels.

The encoder (the classifier's own ``embedding`` and ``recurrent`` layers) learns to predict
each next word from the words before it, and with a bidirectional layer its backward half
learns to predict each previous word (Dai & Le 2015; Howard & Ruder 2018). The classifier
then starts from those weights instead of random ones. Training uses a sampled softmax
(Jean et al. 2015) over the frequency-sorted vocabulary; validation uses the full softmax,
so ``exp(val_loss)`` is the held-out perplexity.

The encoder lives in ``<pretrain_dir>/<model>-<hash>/``, the hash being of its text,
vocabulary and settings, so a later run with the same ones reuses it and a killed
pretraining resumes there (the loop is :func:`sentiment.training.fitting.fit`, under its rules):

    encoder.npz        embedding and recurrent weights (written last: its presence marks it done)
    pretraining.json   what it was made from, its history and held-out perplexity
    history.csv, backup/, checkpoints/, tensorboard/   the resumable loop, as in a run directory
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.config import Config
from sentiment.data import batching, preprocessing, unlabelled
from sentiment.data.sources import Split
from sentiment.errors import ModelError
from sentiment.rundir import RunDir
from sentiment.training import fitting
from sentiment.training.loop import LoopRules

log = logging.getLogger(__name__)

SAMPLED_WORDS = 512  # negative words per step of the sampled softmax (the vocabulary has ~20,000)
HELD_OUT_SHARE, HELD_OUT_MAX = 0.02, 256  # pretraining text kept aside for early stopping (reviews)
ENCODER_LAYERS = ("embedding", "recurrent")  # the layers pretraining trains and the classifier reuses
# The settings an encoder depends on, besides its text and vocabulary: change one, get a new encoder. The
# classifier's own optimizer, batch and dropout settings are not among them: the language model has its own. Its seed is
# the split's (Config.data_seed), so training seeds on one split share one encoder.
ENCODER_SETTINGS = ("model", "bidirectional", "vocab_size", "max_len", "truncate", "embedding_dim", "units", "seed",
                    "clipnorm", "patience", "pretrain_epochs", "pretrain_fraction", "pretrain_learning_rate",
                    "pretrain_batch_size", "pretrain_dropout")


@keras.saving.register_keras_serializable(package="sentiment")
class NextWordLoss(keras.layers.Layer):
    """Language-model loss of recurrent states float [b, t, d] on their own token ids int [b, t] (0 = padding).

    The forward states (the first ``units`` features) at step t predict token t + 1; with
    ``bidirectional``, the backward states (the rest) at step t predict token t - 1. Returns the
    mean cross-entropy per predicted token (a scalar), added as the model's loss.
    """

    def __init__(self, vocab_size: int, units: int, bidirectional: bool, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.units, self.bidirectional, self.seed = vocab_size, units, bidirectional, seed
        self.supports_masking = True
        # One output embedding for both directions, as ELMo shares its softmax.
        self.kernel = self.add_weight(shape=(vocab_size, units), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(vocab_size,), initializer="zeros", name="bias")

    def call(self, inputs: list[tf.Tensor], training: bool = False) -> tf.Tensor:
        """Average the losses of each direction over its real (non-padding) targets."""
        states, ids = inputs
        states = tf.cast(states, "float32")
        pairs = [(states[:, :-1, : self.units], ids[:, 1:])]
        if self.bidirectional:
            pairs.append((states[:, 1:, self.units :], ids[:, :-1]))
        losses = [self.token_loss(s, y, training) for s, y in pairs]
        loss = tf.add_n(losses) / len(losses)
        self.add_loss(loss)
        return loss

    def token_loss(self, states: tf.Tensor, targets: tf.Tensor, training: bool) -> tf.Tensor:
        """Mean cross-entropy of predicting ``targets`` int [b, t] from ``states`` float [b, t, units], padding excluded."""
        real = targets > 0
        states, targets = tf.boolean_mask(states, real), tf.cast(tf.boolean_mask(targets, real), tf.int64)
        # A small vocabulary costs less in full than sampled; the vocabulary is sorted by frequency, as the log-uniform sampler assumes.
        if training and self.vocab_size > 2 * SAMPLED_WORDS:
            loss = tf.nn.sampled_softmax_loss(self.kernel, self.bias, targets[:, None], states, SAMPLED_WORDS,
                                              self.vocab_size, seed=self.seed)
        else:
            logits = tf.matmul(states, self.kernel, transpose_b=True) + self.bias
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.math.divide_no_nan(tf.reduce_sum(loss), tf.cast(tf.size(loss), loss.dtype))  # 0 for a batch of one-word reviews

    def compute_mask(self, inputs: list, mask: list | None = None) -> None:
        """A scalar loss has no steps to mask."""
        return None

    def compute_output_shape(self, input_shapes: list) -> tuple:
        """A scalar."""
        return ()

    def get_config(self) -> dict:
        """Serialize the sizes, direction and sampler seed (the output embedding travels with the weights)."""
        return {**super().get_config(), "vocab_size": self.vocab_size, "units": self.units,
                "bidirectional": self.bidirectional, "seed": self.seed}


def build_language_model(config: Config) -> keras.Model:
    """Build the language model: token ids int32 [b, t] → its loss; its ``embedding`` and ``recurrent`` are the classifier's."""
    dtype = models.compute_dtype(config)
    token_ids = keras.Input(shape=(None,), dtype="int32", name=batching.TOKEN_IDS)
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, dtype=dtype, name="embedding")(token_ids)
    x = keras.layers.SpatialDropout1D(config.pretrain_dropout, name="embedding_dropout")(x)
    # A pooled readout makes the layer return every step's state, which the language model needs.
    recurrent = models.recurrent_layer(dataclasses.replace(config, readout="mean"), dtype)
    x = keras.layers.Dropout(config.pretrain_dropout, name="dropout")(recurrent(x))
    loss = NextWordLoss(config.vocab_size, config.units, isinstance(recurrent, keras.layers.Bidirectional), config.seed,
                        name="next_word_loss")([x, token_ids])
    return keras.Model(token_ids, loss, name=f"{config.model}_language_model")


def compile_language_model(model: keras.Model, config: Config) -> keras.Model:
    """Compile with Adam at the pretraining step size, clipped as the classifier is; the loss is the model's own (no targets)."""
    optimizer = keras.optimizers.Adam(learning_rate=config.pretrain_learning_rate, clipnorm=config.clipnorm)
    model.compile(optimizer=optimizer, jit_compile=False)  # boolean masks have no static shape for XLA
    optimizer.build(model.trainable_variables)  # its slots now, so a resumed pretraining restores them
    return model


def pretraining_rules(config: Config) -> LoopRules:
    """The loop's rules for pretraining: a constant step size, the classifier's patience, at most ``pretrain_epochs`` epochs."""
    # Not the classifier's halving: held-out perplexity was still falling steeply after each epoch at a constant rate.
    return LoopRules(config.pretrain_epochs, config.patience, config.pretrain_learning_rate, 1.0)


def sample_text(texts: list[str], config: Config) -> list[str]:
    """Return the wordful texts, a seeded ``pretrain_fraction`` sample of them, in a seeded order."""
    texts = unlabelled_split(texts).where(preprocessing.has_words, "without words from the pretraining text").texts
    order = np.random.default_rng(config.seed).permutation(len(texts))
    return [texts[i] for i in order[: max(2, int(round(len(texts) * config.pretrain_fraction)))]]


def encoder_settings(config: Config) -> dict:
    """Return the settings the encoder is made with (``seed``: the split's)."""
    return {**{k: getattr(config, k) for k in ENCODER_SETTINGS}, "seed": config.data_seed()}


def content_hash(config: Config, vocabulary: list[str], texts: list[str]) -> str:
    """Return the sha256 of the encoder's settings, vocabulary and text (hex)."""
    digest = hashlib.sha256(json.dumps(encoder_settings(config), sort_keys=True).encode())
    digest.update("\n".join(vocabulary).encode())
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8", errors="replace"))
    return digest.hexdigest()


def encoder_dir(config: Config, digest: str) -> Path:
    """Return the folder of the encoder with this hash."""
    return Path(config.pretrain_dir).expanduser() / f"{config.model}{'-bi' if config.bidirectional else ''}-{digest[:16]}"


def encoder_path(folder: Path) -> Path:
    """Return the finished encoder's weights file in ``folder``."""
    return folder / "encoder.npz"


def pretrain(config: Config, vocabulary: list[str], train_texts: list[str], held_out: list[str], verbose: int = 2,
             extra_callbacks: list[keras.callbacks.Callback] | None = None) -> dict:
    """Return the encoder for ``config``: reused if one with the same text and settings exists, else trained (resumably).

    ``train_texts`` are the classifier's training reviews; ``held_out`` its validation and test
    reviews, which pretraining must never read. Returns the encoder's ``pretraining.json`` record.
    """
    classifier_seed = config.seed
    config = encoder_config(config)
    texts = sample_text(unlabelled.load_unlabelled(config, train_texts, held_out), config)
    digest = content_hash(config, vocabulary, texts)
    folder = encoder_dir(config, digest)
    if encoder_path(folder).exists():
        log.info("reusing the pretrained encoder %s", folder)
        return read_record(folder)
    with RunDir(folder).lock():
        if encoder_path(folder).exists():  # another run finished it while this one waited
            return read_record(folder)
        record = train_encoder(config, vocabulary, texts, digest, folder, verbose, extra_callbacks)
    # The classifier then starts from the random state it would have had with the encoder reused.
    keras.utils.set_random_seed(classifier_seed)
    return record


def encoder_config(config: Config) -> Config:
    """Return ``config`` with the split's seed: the language model's initialization, sample, order and sampler follow it."""
    return dataclasses.replace(config, seed=config.data_seed())


def train_encoder(config: Config, vocabulary: list[str], texts: list[str], digest: str, folder: Path, verbose: int,
                  extra_callbacks: list[keras.callbacks.Callback] | None = None) -> dict:
    """Train the language model on ``texts`` in ``folder`` (resuming what is there); save the encoder and its record."""
    held = min(HELD_OUT_MAX, max(1, int(len(texts) * HELD_OUT_SHARE)))
    train, held_out = texts[held:], texts[:held]
    log.info("pretraining %s on %d review(s) (%d held out) in %s", config.model, len(train), held, folder)
    keras.utils.set_random_seed(config.seed)  # the encoder is the same whichever run (training seed) makes it
    # The language model reads token ids only, in batches of its own size.
    token_config = dataclasses.replace(config, ngram_vocab_size=0, batch_size=config.pretrain_batch_size)
    preprocessor = preprocessing.make_preprocessor(token_config, vocabulary)
    shuffle_epoch = batching.epoch_variable()
    train_ds = batching.make_train_dataset(unlabelled_split(train), preprocessor, token_config, shuffle_epoch)
    val_ds = batching.make_eval_dataset(unlabelled_split(held_out), preprocessor, token_config)
    model = compile_language_model(build_language_model(config), config)
    started = time.perf_counter()
    result = fitting.fit(model, train_ds, val_ds, config, RunDir(folder), shuffle_epoch, verbose, extra_callbacks,
                          rules=pretraining_rules(config))
    best = result.history[result.best_epoch]
    record = {
        "hash": digest,
        "settings": encoder_settings(config),
        "source": config.data, "unlabelled": config.unlabelled,
        "reviews": len(train), "held_out_reviews": held,
        "epochs": len(result.history), "best_epoch": result.best_epoch + 1,
        "val_loss": round(best["val_loss"], 4), "val_perplexity": round(math.exp(min(best["val_loss"], 50.0)), 1),
        "wall_seconds": round(sum(r.get("epoch_seconds", 0.0) for r in result.history), 1),
        "seconds_this_session": round(time.perf_counter() - started, 1),
        "versions": artifacts.library_versions(),
    }
    save_encoder(model, encoder_path(folder))
    artifacts.write_json(folder / "pretraining.json", record)
    fitting.clear_backup(RunDir(folder))
    log.info("pretrained encoder saved to %s: held-out perplexity %.1f after %d epoch(s)", folder, record["val_perplexity"], record["epochs"])
    return read_record(folder)


def unlabelled_split(texts: list[str]) -> Split:
    """Wrap texts as a Split whose labels (zeros) the language model ignores."""
    return Split(list(texts), np.zeros(len(texts), np.int32))


def read_record(folder: Path) -> dict:
    """Return an encoder's ``pretraining.json`` with its folder."""
    return {**artifacts.read_json(folder / "pretraining.json"), "encoder": str(folder)}


def save_encoder(model: keras.Model, path: Path) -> None:
    """Write the encoder layers' weights to ``path`` (.npz, atomically)."""
    arrays = {f"{name}/{i}": w for name in ENCODER_LAYERS for i, w in enumerate(model.get_layer(name).get_weights())}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    artifacts.write_bytes(path, buffer.getvalue())


def load_encoder(model: keras.Model, folder: str | Path, layers: tuple[str, ...] = ENCODER_LAYERS) -> None:
    """Set ``model``'s ``layers`` (embedding and recurrent, or the embedding alone) to the pretrained encoder's weights; ModelError if they do not fit."""
    path = encoder_path(Path(folder))
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {name: [data[f"{name}/{i}"] for i in range(len(model.get_layer(name).get_weights()))] for name in layers}
        for name, values in weights.items():
            model.get_layer(name).set_weights(values)
    except (OSError, KeyError, ValueError) as e:
        raise ModelError(f"cannot use the pretrained encoder {path}: {e}") from e
    log.info("classifier starts from the pretrained encoder %s (%s)", folder, " and ".join(layers))


def transferred_layers(config: Config) -> tuple[str, ...]:
    """Return the encoder layers a classifier takes, as ``config.pretrain_transfer`` says."""
    # Word vectors alone: a language model's states pooled over a whole review differ little between reviews (README).
    return ENCODER_LAYERS if config.pretrain_transfer == "encoder" else ("embedding",)
