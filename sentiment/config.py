"""The one typed configuration that describes how a model is made.

Every run saves it as ``config.json`` and every exported model carries it, so a
model can always say how it was made and prediction needs no hyperparameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from sentiment.errors import ConfigError

TRUNCATIONS = ("head", "tail")  # which end of a long review is kept
READOUTS = ("last", "mean", "max", "max_mean")  # what the classifier reads from the recurrent layer
XLA_CHOICES = ("auto", "on", "off")  # whether the train step is compiled with XLA
DISTRIBUTE_CHOICES = ("off", "auto", "mirrored", "multi_worker")  # tf.distribute strategy (sentiment.training.distribute)
STREAM_CHOICES = ("auto", "on", "off")  # whether CSV reviews are streamed by tf.data instead of read into memory
WIDE_ONLY = "wide"  # the model that is the n-gram branch alone: no embedding, no recurrent layer (sentiment.models)
BRANCH_CHOICES = ("joint", "stacked")  # how a wide and deep model's two branches learn (sentiment.training.stacking)
TEACHER_CHOICES = ("", "nbsvm_bi", "tfidf_logreg", "fasttext")  # anchors that can label the unlabelled reviews (sentiment.evaluation.anchors.ANCHORS)
TRANSFER_CHOICES = ("encoder", "embedding")  # what a classifier takes from a pretrained encoder (sentiment.training.pretraining)


def parse_threshold(spec: str) -> tuple[str, float | None]:
    """Parse a threshold setting: ``0.7`` → (fixed, 0.7); ``f1`` → (f1, None); ``precision=0.9`` → (precision, 0.9); ``recall=0.9``."""
    kind, _, value = str(spec).strip().partition("=")
    try:
        if kind == "f1" and not value:
            return "f1", None
        if kind in ("precision", "recall") and 0 < float(value) <= 1:
            return kind, float(value)
        if not value and 0 <= float(kind) <= 1:
            return "fixed", float(kind)
    except ValueError:
        pass
    raise ConfigError(f"threshold={spec!r} is invalid: give a number in [0, 1], f1, precision=X or recall=X (X in (0, 1])")


def _field(default: Any, help: str) -> Any:
    """Declare a config field with its default and the help text its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    """Hyperparameters and data settings of one training run; validated on creation, immutable after."""

    model: str = _field("lstm", "model name: one of PRESETS (its recurrent layer: sentiment.models.REGISTRY; wide has none)")
    data: str = _field("imdb", "imdb (TFDS imdb_reviews), a .csv/.csv.gz path, or an aclImdb folder/tarball")
    tfds_data_dir: str = _field("", "TFDS data dir for --data imdb (default: $TFDS_DATA_DIR or ~/tensorflow_datasets); offline, put aclImdb_v1.tar.gz in its downloads/manual/")
    seed: int = _field(42, "seeds shuffling, splits, weight init and dropout")
    split_seed: int = _field(-1, "seeds the train/validation/test split instead of --seed (-1 = --seed): several training seeds on one split, paired on the same test reviews, sharing one set of word vectors")
    val_fraction: float = _field(0.1, "share of the training reviews held out for validation")
    test_fraction: float = _field(0.1, "share held out for test (CSV only; other sources have a test split)")
    max_examples: int = _field(0, "cap on training reviews, for quick runs (0 = all)")
    vocab_size: int = _field(20_000, "vocabulary size, including padding and out-of-vocabulary tokens")
    max_len: int = _field(500, "reviews are truncated to this many tokens")
    truncate: str = _field("tail", "which tokens a long review keeps: tail (its last max_len, where reviews give their verdict) or head")
    embedding_dim: int = _field(64, "width of the learned word vectors")
    units: int = _field(64, "width of the recurrent layer (per direction for bilstm)")
    ngram_vocab_size: int = _field(0, "word 1-2-grams of the wide branch: a linear layer on their TF-IDF, summed with the recurrent branch before the sigmoid (0 = no wide branch)")
    ngram_scale: float = _field(40.0, "multiplies the unit-norm TF-IDF features so the wide branch learns at the recurrent branch's learning rate")
    branches: str = _field("joint", "how a wide and deep model's branches learn: joint (one loss on their summed logit) or stacked (each its own loss, as if alone; their mix then fitted on the validation reviews)")
    readout: str = _field("last", "what the classifier reads: last (final state), mean or max (masked average or maximum of all states), max_mean (both, concatenated)")
    bidirectional: bool = _field(False, "also read each review backwards (keras.layers.Bidirectional; still cuDNN-eligible): twice the recurrent cost")
    embedding_dropout: float = _field(0.4, "drops whole word vectors (SpatialDropout1D) against overfitting")
    dropout: float = _field(0.5, "dropout after the recurrent layer (not recurrent dropout: keeps cuDNN)")
    pretrain_epochs: int = _field(0, "language-model pretraining of the embedding + recurrent layer on unlabelled review text before the classifier trains, at most this many epochs (0 = none; sentiment.training.pretraining)")
    unlabelled: str = _field("", "more unlabelled reviews to pretrain on, besides the training reviews and the source's own (TFDS unsupervised split, aclImdb train/unsup/): a .txt (one review per line), a .csv/.csv.gz (its text column), a folder of .txt reviews, or a glob of these")
    pretrain_fraction: float = _field(1.0, "share of the pretraining text used, for learning curves (a seeded sample)")
    pretrain_transfer: str = _field("encoder", "what the classifier takes from the pretrained encoder: encoder (word vectors and recurrent layer) or embedding (word vectors only; the recurrent layer starts fresh)")
    pretrain_learning_rate: float = _field(2e-3, "the language model's Adam step size, constant over its epochs (its own settings: with the classifier's it learned no more than word frequencies)")
    pretrain_batch_size: int = _field(32, "reviews per language-model batch (smaller than the classifier's: more updates per epoch)")
    pretrain_dropout: float = _field(0.1, "dropout on the language model's word vectors and states (the classifier's heavier dropout starves next-word prediction)")
    word_vector_epochs: int = _field(0, "skip-gram word vectors (gensim) learned for this many epochs from the pretraining text (training + unlabelled reviews, never validation or test) start the embedding (0 = random start; sentiment.training.word_vectors)")
    teacher: str = _field("", "an anchor (nbsvm_bi, tfidf_logreg or fasttext) fitted on the training reviews, or a finished run's model (its folder, e.g. runs/wide_lstm_v7-s42: trained on the same split), labels the unlabelled reviews (the source's own and --unlabelled's, never validation or test) with its probabilities, and the classifier trains on those soft labels too: distillation; the model stays as it is ('' = none; sentiment.training.teacher)")
    adversarial: float = _field(0.0, "adversarial training on the word vectors (Miyato et al. 2017): every batch is also trained with each review's vectors moved, in the direction that raises its loss most, by this fraction of their norm (0 = off, e.g. 0.02; about twice the training time; sentiment.training.adversarial)")
    pretrain_dir: str = _field("pretrained", "where pretrained encoders are kept, one folder per content hash of their text and settings; later runs reuse them")
    batch_size: int = _field(64, "reviews per batch")
    epochs: int = _field(10, "upper bound; early stopping usually ends sooner")
    learning_rate: float = _field(1e-3, "Adam step size")
    clipnorm: float = _field(1.0, "gradient norm clipping, against exploding RNN gradients")
    lr_decay: float = _field(0.5, "multiply the learning rate by this after every epoch (1 = constant)")
    patience: int = _field(2, "epochs without validation-loss improvement before stopping")
    refit: bool = _field(False, "after early stopping picks the epoch count, retrain from scratch on train + validation for that many epochs")
    calibrate: bool = _field(True, "after training, fit temperature scaling on the validation reviews so probabilities mean what they say; exports return the calibrated probability (sentiment.evaluation.calibration)")
    threshold: str = _field("0.5", "P(positive) at or above which a review is labelled positive, carried by the export: a number, or chosen on the validation reviews: f1 (best F1), precision=0.9 or recall=0.9 (that target, with the most of the other)")
    mixed_precision: bool = _field(False, "mixed_float16 on GPU (ignored on CPU)")
    distribute: str = _field("off", "tf.distribute: off (one device), mirrored (all GPUs of this machine, else its CPUs), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG), auto (mirrored when several GPUs are visible); --batch-size is per replica")
    stream: str = _field("auto", "read CSV reviews with tf.data instead of into memory: on, off, or auto (on for a glob of shards or files over 256 MB); splits then go by a hash of each review")
    stream_sample: int = _field(200_000, "with --stream: vocabularies are learned from the first this many training reviews and the report scores the first this many test reviews (bounded memory)")
    jit_compile: str = _field("off", "XLA: auto (on for CPU-only machines; off on a GPU, where cuDNN's fused LSTM kernel is faster and excludes XLA), on or off")

    def __post_init__(self) -> None:
        """Raise ConfigError naming the first impossible setting (so a loaded config is checked too)."""
        checks = [
            # Names and upper bounds first (issue 31): a value past these crashes a library instead of training.
            ("model", self.model in PRESETS, f"one of {', '.join(PRESETS)}"),
            ("seed", 0 <= self.seed <= 2**31 - 1, "in [0, 2147483647]"),
            ("split_seed", -1 <= self.split_seed <= 2**31 - 1, "-1 (the same as seed) or in [0, 2147483647]"),
            ("vocab_size", self.vocab_size <= 10_000_000, "at most 10,000,000"),
            ("ngram_vocab_size", self.ngram_vocab_size <= 10_000_000, "at most 10,000,000"),
            ("max_len", self.max_len <= 100_000, "at most 100,000 tokens"),
            ("embedding_dim", self.embedding_dim <= 65_536, "at most 65,536"),
            ("units", self.units <= 65_536, "at most 65,536"),
            ("batch_size", self.batch_size <= 1_000_000, "at most 1,000,000"),
            ("pretrain_batch_size", self.pretrain_batch_size <= 1_000_000, "at most 1,000,000"),
            ("epochs", self.epochs <= 100_000, "at most 100,000"),
            ("patience", self.patience <= 100_000, "at most 100,000"),
            ("pretrain_epochs", self.pretrain_epochs <= 100_000, "at most 100,000"),
            ("max_examples", self.max_examples <= 2**31 - 1, "at most 2147483647"),
            ("stream_sample", self.stream_sample <= 2**31 - 1, "at most 2147483647"),
            ("learning_rate", self.learning_rate < float("inf"), "finite"),
            ("pretrain_learning_rate", self.pretrain_learning_rate < float("inf"), "finite"),
            ("clipnorm", self.clipnorm < float("inf"), "finite"),
            ("ngram_scale", self.ngram_scale < float("inf"), "finite"),
            ("vocab_size", self.vocab_size >= 3, "at least 3 (padding, out-of-vocabulary and one word)"),
            ("max_len", self.max_len >= 1, "at least 1"),
            ("truncate", self.truncate in TRUNCATIONS, " or ".join(TRUNCATIONS)),
            ("readout", self.readout in READOUTS, " or ".join(READOUTS)),
            ("jit_compile", self.jit_compile in XLA_CHOICES, " or ".join(XLA_CHOICES)),
            ("distribute", self.distribute in DISTRIBUTE_CHOICES, " or ".join(DISTRIBUTE_CHOICES)),
            ("stream", self.stream in STREAM_CHOICES, " or ".join(STREAM_CHOICES)),
            ("branches", self.branches in BRANCH_CHOICES, " or ".join(BRANCH_CHOICES)),
            ("branches", self.branches == "joint" or (self.ngram_vocab_size >= 3 and self.has_recurrent_part()),
             "joint unless the model has both a recurrent and an n-gram branch"),
            ("teacher", self.teacher in TEACHER_CHOICES or is_run_path(self.teacher),
             "'' (none), " + ", ".join(TEACHER_CHOICES[1:]) + " or a finished run's folder (a path with a /)"),
            ("adversarial", 0 <= self.adversarial <= 1, "in [0, 1]"),
            ("adversarial", self.adversarial == 0 or self.has_recurrent_part(), f"0 for model {WIDE_ONLY} (it has no word vectors to perturb)"),
            ("adversarial", self.adversarial == 0 or self.distribute != "multi_worker", "0 with --distribute multi_worker (its own training step has no adversarial pass)"),
            ("pretrain_transfer", self.pretrain_transfer in TRANSFER_CHOICES, " or ".join(TRANSFER_CHOICES)),
            ("stream_sample", self.stream_sample >= 1, "at least 1"),
            ("embedding_dim", self.embedding_dim >= 1, "at least 1"),
            ("units", self.units >= 1, "at least 1"),
            ("ngram_vocab_size", self.ngram_vocab_size == 0 or self.ngram_vocab_size >= 3, "0 (no wide branch) or at least 3"),
            ("ngram_scale", self.ngram_scale > 0, "positive"),
            ("ngram_vocab_size", self.has_recurrent_part() or self.ngram_vocab_size >= 3, f"at least 3 for model {WIDE_ONLY} (its n-grams are all it reads)"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("patience", self.patience >= 0, "0 or more"),
            ("learning_rate", self.learning_rate > 0, "positive"),
            ("clipnorm", self.clipnorm > 0, "positive"),
            ("lr_decay", 0 < self.lr_decay <= 1, "in (0, 1]"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
            ("embedding_dropout", 0 <= self.embedding_dropout < 1, "in [0, 1)"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("test_fraction", 0 <= self.test_fraction < 1, "in [0, 1)"),
            ("max_examples", self.max_examples >= 0, "0 or more"),
            ("pretrain_epochs", self.pretrain_epochs >= 0, "0 or more"),
            ("pretrain_epochs", self.has_recurrent_part() or self.pretrain_epochs == 0, f"0 for model {WIDE_ONLY} (it has no recurrent layer to pretrain)"),
            ("word_vector_epochs", 0 <= self.word_vector_epochs <= 1000, "in [0, 1000]"),
            ("word_vector_epochs", self.has_recurrent_part() or self.word_vector_epochs == 0, f"0 for model {WIDE_ONLY} (it has no embedding)"),
            ("pretrain_fraction", 0 < self.pretrain_fraction <= 1, "in (0, 1]"),
            ("pretrain_learning_rate", self.pretrain_learning_rate > 0, "positive"),
            ("pretrain_batch_size", self.pretrain_batch_size >= 1, "at least 1"),
            ("pretrain_dropout", 0 <= self.pretrain_dropout < 1, "in [0, 1)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: it must be {expected}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("val_fraction + test_fraction must leave some reviews for training")
        if self.branches == "stacked" and self.refit:
            raise ConfigError("branches='stacked' fits the branches' mix on the validation reviews, which --refit trains on; use one or the other")
        if parse_threshold(self.threshold)[0] != "fixed" and self.refit:
            raise ConfigError(f"threshold={self.threshold!r} is chosen on the validation reviews, which --refit trains on; give a number")

    def data_seed(self) -> int:
        """Return the seed of the train/validation/test split: ``split_seed``, or ``seed`` when it is -1."""
        return self.seed if self.split_seed < 0 else self.split_seed

    def has_recurrent_part(self) -> bool:
        """Return False for the n-gram-only model, which has no embedding or recurrent layer (nor a LiteRT model)."""
        return self.model != WIDE_ONLY

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-serializable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Build a config from a dict, ignoring keys this version does not know (ConfigError on bad values)."""
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(values).__name__}")
        types = {f.name: _TYPES[str(f.type)] for f in dataclasses.fields(cls)}
        for name, value in values.items():
            if name in types and not _fits(value, types[name]):
                raise ConfigError(f"{name}={value!r} is invalid: it must be {types[name].__name__}")
        return cls(**{k: v for k, v in values.items() if k in types})

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a run's config.json (keys a newer version added are ignored); ConfigError if unreadable."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
        except (ValueError, UnicodeDecodeError) as e:  # truncated or not JSON at all
            raise ConfigError(f"config {path} is not valid JSON ({e})") from e
        return cls.from_dict(values)


# The model train.py trains (its preset, v5) and predict.py loads (its newest version, v7) when none is named (docs/results.md).
DEFAULT_MODEL = "wide_lstm"

# Measured per-model defaults (see README): a --config file and flags win over these. Every model of
# sentiment.models.REGISTRY has one; they live here so the command line can list them without TensorFlow.
PRESETS: dict[str, dict[str, Any]] = {
    # SimpleRNN gradients explode or vanish over long inputs: a smaller step and
    # tighter clipping keep it from diverging, which is all it can be helped.
    "simple_rnn": {"learning_rate": 5e-4, "clipnorm": 0.5},
    "lstm": {},
    "lstm_chrono": {},
    "gru": {},
    "bilstm": {},
    # Wide and deep (docs/results.md: the shipped default), v5: the LSTM plus a linear TF-IDF 1-2-gram branch, stacked: each
    # branch learns on its own loss and their mix is fitted on the validation reviews (sentiment.training.stacking); trained
    # jointly (v3, configs/wide_lstm_v3.json) the n-gram branch left the LSTM nothing to learn. The n-gram branch reads
    # the whole review, the LSTM the last 256 tokens (prediction speed), from 128-d skip-gram vectors of the
    # pretraining text, read out at its last state (v4, configs/wide_lstm_v4.json, read the max and mean of all states:
    # as accurate, five times slower to serve); a 10,000-word vocabulary keeps the export (SavedModel + LiteRT twin) under 25 MB.
    "wide_lstm": {"branches": "stacked", "ngram_vocab_size": 200_000, "max_len": 256, "vocab_size": 10_000,
                  "embedding_dim": 128, "word_vector_epochs": 5, "batch_size": 128, "learning_rate": 2e-3, "epochs": 3, "patience": 1},
}
# The default minus its recurrent part (WIDE_ONLY), the ablation of docs/results.md: the same n-gram features, batches, step
# size and epochs as the default's n-gram branch.
PRESETS[WIDE_ONLY] = {k: PRESETS["wide_lstm"][k] for k in ("ngram_vocab_size", "max_len", "batch_size", "learning_rate", "epochs", "patience")}

def make_config(model: str = DEFAULT_MODEL, **overrides: Any) -> Config:
    """Return the config for ``model``: dataclass defaults, then its preset, then ``overrides`` (None = not given)."""
    if model not in PRESETS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return Config.from_dict({**Config().to_dict(), **PRESETS[model], **given, "model": model})


def is_run_path(teacher: str) -> bool:
    """Return True if a --teacher value names a run folder (a path: it holds a /) rather than an anchor."""
    return "/" in teacher or os.sep in teacher


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _fits(value: Any, kind: type) -> bool:
    """Return True if a JSON value can stand for a field of type ``kind`` (an int is a fine float)."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def field_type(field: dataclasses.Field) -> type:
    """Return the Python type of a Config field (annotations are strings here)."""
    return _TYPES[str(field.type)]


def config_fields() -> list[dataclasses.Field]:
    """Return the dataclass fields, for building command-line flags from them."""
    return list(dataclasses.fields(Config))


def read_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe file (JSON object of some Config fields) and check its keys and types; ConfigError if bad."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"config {path} is not valid JSON ({e})") from e
    if not isinstance(values, dict):
        raise ConfigError(f"config {path} must hold a JSON object of settings")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise ConfigError(f"config {path}: unknown setting(s) {', '.join(unknown)}")
    Config.from_dict(values)  # types and ranges
    return values
