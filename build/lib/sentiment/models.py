"""Model registry: Embedding → recurrent layer → dropout → Dense sigmoid, optionally wide and deep.

The models differ only in their recurrent layer and preset, so the registry maps a
name to a factory for that layer and one builder assembles the rest. With
``ngram_vocab_size`` set, a wide branch (a linear layer on word 1-2-gram TF-IDF)
adds its logit to the recurrent branch's before the sigmoid (Cheng et al., 2016).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts
from sentiment.config import WIDE_ONLY, Config
from sentiment.data import preprocessing  # also registers standardize, TruncateTokens and NgramTfIdf for loading models
from sentiment.data.batching import NGRAM_IDS, TOKEN_IDS
from sentiment.errors import ConfigError, ModelError, first_line

log = logging.getLogger(__name__)

RecurrentFactory = Callable[[Config, str], keras.layers.Layer]




def _simple_rnn(config: Config, dtype: str) -> keras.layers.Layer:
    return keras.layers.SimpleRNN(config.units, return_sequences=config.readout != "last", dtype=dtype, name="recurrent")


def _lstm(config: Config, dtype: str) -> keras.layers.Layer:
    # Defaults (tanh/sigmoid, bias, no recurrent dropout, no unroll) keep the cuDNN kernel.
    return keras.layers.LSTM(config.units, return_sequences=config.readout != "last", dtype=dtype, name="recurrent")


@keras.saving.register_keras_serializable(package="sentiment")
class ChronoBias(keras.initializers.Initializer):
    """LSTM bias [input, forget, cell, output] with chrono init (Tallec & Ollivier, 2018).

    b_forget = log(U(1, max_steps - 1)), b_input = -b_forget: at the start each unit keeps
    its memory for up to ~max_steps steps, instead of the ~3 steps of the default
    forget bias of 1 (whose gradients vanish like 0.73**t).
    """

    def __init__(self, max_steps: int, seed: int | None = None):
        self.max_steps, self.seed = max_steps, seed

    def __call__(self, shape: tuple, dtype: str | None = None) -> tf.Tensor:
        """Return the bias vector of length 4 * units."""
        units = shape[0] // 4
        uniform = keras.random.uniform((units,), 1.0, max(self.max_steps - 1, 2.0), seed=self.seed)
        forget = keras.ops.log(uniform)
        zeros = keras.ops.zeros((units,))
        return keras.ops.cast(keras.ops.concatenate([-forget, forget, zeros, zeros]), dtype or "float32")

    def get_config(self) -> dict:
        """Serialize the horizon and seed."""
        return {"max_steps": self.max_steps, "seed": self.seed}


def _lstm_chrono(config: Config, dtype: str) -> keras.layers.Layer:
    # Same cuDNN-eligible layer; only the initial gate biases differ (horizon = max_len).
    return keras.layers.LSTM(
        config.units, return_sequences=config.readout != "last", unit_forget_bias=False,
        bias_initializer=ChronoBias(config.max_len, config.seed), dtype=dtype, name="recurrent",
    )


def _gru(config: Config, dtype: str) -> keras.layers.Layer:
    # reset_after=True (the default) is what cuDNN implements.
    return keras.layers.GRU(config.units, return_sequences=config.readout != "last", dtype=dtype, name="recurrent")


def _bilstm(config: Config, dtype: str) -> keras.layers.Layer:
    lstm = keras.layers.LSTM(config.units, return_sequences=config.readout != "last", dtype=dtype)
    return keras.layers.Bidirectional(lstm, dtype=dtype, name="recurrent")


# The recurrent layer of each model; their measured presets live beside Config (sentiment.config.PRESETS).
REGISTRY: dict[str, RecurrentFactory] = {
    "simple_rnn": _simple_rnn,
    "lstm": _lstm,
    "lstm_chrono": _lstm_chrono,
    "gru": _gru,
    "bilstm": _bilstm,
    "wide_lstm": _lstm,  # plus the wide branch its preset switches on
}


def gpu_available() -> bool:
    """Return True when TensorFlow sees at least one GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def compute_dtype(config: Config) -> str:
    """Return the layer dtype policy: mixed_float16 only when asked for and a GPU is present."""
    if config.mixed_precision and gpu_available():
        return "mixed_float16"
    if config.mixed_precision:
        log.info("mixed precision asked for but no GPU found: training in float32")
    return "float32"


def recurrent_layer(config: Config, dtype: str) -> keras.layers.Layer:
    """Return the model's recurrent layer, wrapped in Bidirectional when ``config.bidirectional`` asks (bilstm always is)."""
    layer = REGISTRY[config.model](config, dtype)
    if config.bidirectional and not isinstance(layer, keras.layers.Bidirectional):
        layer = keras.layers.Bidirectional(layer, dtype=dtype, name="recurrent")
    return layer


@keras.saving.register_keras_serializable(package="sentiment")
class MaskedMaxPooling(keras.layers.Layer):
    """Maximum over the real (unmasked) steps of each sequence: float [b, t, d] with mask [b, t] → [b, d]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, states: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """Padding steps never win the maximum (rows are never fully masked: wordless reviews are dropped)."""
        if mask is not None:
            lowest = keras.ops.full_like(states, -1e9)
            states = keras.ops.where(keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1), states, lowest)
        return keras.ops.max(states, axis=1)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        """The pooled vector has no time axis left to mask."""
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """[b, t, d] → [b, d]."""
        return (input_shape[0], input_shape[2])


def read_out(states: keras.KerasTensor, readout: str) -> keras.KerasTensor:
    """Turn the recurrent layer's output into one vector per review, as ``readout`` names (see Config.readout)."""
    if readout == "last":  # the layer returned its final state already
        return states
    pooled = []
    if readout in ("max", "max_mean"):  # the strongest evidence anywhere in the review (Johnson & Zhang 2016)
        pooled.append(MaskedMaxPooling(name="max_over_time")(states))
    if readout in ("mean", "max_mean"):  # average over real (unmasked) steps only
        pooled.append(keras.layers.GlobalAveragePooling1D(name="mean_over_time")(states))
    return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="max_and_mean")(pooled)


def build_model(config: Config, ngram_idf: np.ndarray | None = None) -> keras.Model:
    """Build the classifier on token ids: int32 [batch, time] (0 = padding) → P(positive) float32 [batch, 1].

    With a wide branch the input is a dict: ``token_ids`` as above and ``ngram_ids`` int32
    [batch, n], whose TF-IDF weights are ``ngram_idf`` (float32 [ngram_vocab_size]). The
    n-gram-only model (``wide``) takes the same dict and leaves ``token_ids`` unused, so the
    pipeline is shared.
    """
    if config.model not in REGISTRY and config.has_recurrent_part():
        raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join([*REGISTRY, WIDE_ONLY])}")
    dtype = compute_dtype(config)
    token_ids = keras.Input(shape=(None,), dtype="int32", name=TOKEN_IDS)
    deep_logit = None
    if config.has_recurrent_part():
        x = recurrent_features(config, token_ids, dtype)
        if not config.ngram_vocab_size:
            # The output stays float32 under mixed precision so the sigmoid and loss are stable.
            probability = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
            return keras.Model(token_ids, probability, name=config.model)
        deep_logit = keras.layers.Dense(1, dtype="float32", name="deep_logit")(x)
    ngram_ids = keras.Input(shape=(None,), dtype="int32", name=NGRAM_IDS)
    features = preprocessing.NgramTfIdf(config.ngram_vocab_size, config.ngram_scale, ngram_idf, dtype="float32", name="ngram_tfidf")(ngram_ids)
    logit = keras.layers.Dense(1, dtype="float32", name="wide_logit")(features)
    if deep_logit is not None:
        logit = keras.layers.Add(dtype="float32", name="logit")([deep_logit, logit])
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    return keras.Model({TOKEN_IDS: token_ids, NGRAM_IDS: ngram_ids}, probability, name=config.model)


def recurrent_features(config: Config, token_ids: keras.KerasTensor, dtype: str) -> keras.KerasTensor:
    """Return the recurrent branch's review vector: token ids → word vectors → recurrent layer → readout → dropout."""
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, dtype=dtype, name="embedding")(token_ids)
    # Dropping whole word vectors (not single features) regularizes the large embedding table.
    x = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    x = recurrent_layer(config, dtype)(x)
    x = read_out(x, config.readout)
    return keras.layers.Dropout(config.dropout, name="dropout")(x)


def use_xla(config: Config) -> bool:
    """Return whether the train step is compiled with XLA, as ``config.jit_compile`` asks (auto: only without a GPU; never for wide models)."""
    if config.ngram_vocab_size:
        if config.jit_compile == "on":
            log.warning("XLA off: the wide branch's sparse TF-IDF has no XLA kernel")
        return False
    if config.jit_compile != "auto":
        return config.jit_compile == "on"
    # XLA and cuDNN exclude each other for LSTM/GRU (keras-team/keras#18456): on a GPU the fused kernel wins.
    return not gpu_available()


@keras.saving.register_keras_serializable(package="sentiment")
def label_accuracy(labels: Any, probabilities: Any) -> Any:
    """Binary accuracy at 0.5 that reads a soft label (a teacher's probability, sentiment.training.teacher) as the side it leans to."""
    return keras.metrics.binary_accuracy(keras.ops.cast(keras.ops.greater(labels, 0.5), "float32"), probabilities)


def compile_model(model: keras.Model, config: Config) -> keras.Model:
    """Compile with Adam (clipped), binary cross-entropy and accuracy/AUC metrics; XLA as ``use_xla`` decides."""
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    if compute_dtype(config) == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss="binary_crossentropy",
        metrics=[keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy"), keras.metrics.AUC(name="auc")],
        jit_compile=use_xla(config),
    )
    # Its slots now, under the caller's strategy scope: a resumed run restores them before fit() would build them.
    optimizer.build(model.trainable_variables)
    if use_xla(config) and not model.jit_compile:
        log.warning("XLA asked for but not used: Keras refuses it while TensorFlow op determinism is on")
    return model


def build_end_to_end(classifier: keras.Model, preprocessor: keras.Model) -> keras.Model:
    """Wrap ``classifier`` for raw reviews with the preprocessing layer it trained on: string [batch] → P(positive) [batch, 1]."""
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model(text, classifier(preprocessor(text)), name=f"{classifier.name}_end_to_end")


def recurrent_cells(model: keras.Model) -> list[keras.layers.Layer]:
    """Return the recurrent layers (SimpleRNN, LSTM, GRU) inside ``model``, unwrapping Bidirectional."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)):
            found.append(layer)
    return found


def cudnn_eligible(layer: keras.layers.Layer) -> bool:
    """Return True if an LSTM/GRU layer's arguments allow the cuDNN kernel (Keras' own criteria)."""
    if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
        return False
    cell = layer.cell
    eligible = (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.recurrent_dropout == 0
        and not layer.unroll
        and cell.use_bias
        and layer.use_cudnn in ("auto", True)
    )
    if isinstance(layer, keras.layers.GRU):
        eligible = eligible and cell.reset_after
    return bool(eligible)


def describe_kernel(model: keras.Model) -> str:
    """Say which recurrent kernel training will use on this machine, for the start-up log."""
    cells = recurrent_cells(model)
    if not cells:
        return "no recurrent layer"
    if not any(isinstance(c, (keras.layers.LSTM, keras.layers.GRU)) for c in cells):
        return "SimpleRNN: generic kernel (cuDNN has no SimpleRNN path in Keras)"
    if not all(cudnn_eligible(c) for c in cells):
        return "generic kernel: the recurrent layer's arguments are not cuDNN-eligible"
    if gpu_available():
        return "cuDNN kernel (GPU present, arguments eligible, masks right-padded)"
    return "CPU kernel (no GPU; arguments are cuDNN-eligible, so a GPU would use cuDNN)"


def save_model(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` model atomically (a kill or a full disk never leaves half a file)."""
    with artifacts.atomic_path(path) as tmp:
        model.save(tmp)


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model saved by this project for inference (no optimizer), or raise a one-line ModelError."""
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as e:  # truncated or not a model
        raise ModelError(f"cannot load model {path}: {first_line(e)}") from e
