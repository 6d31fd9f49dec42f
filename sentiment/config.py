"""The one typed configuration that describes how a model is made.

Every run saves it as ``config.json`` and every exported model carries it, so a
model can always say how it was made and prediction needs no hyperparameters.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from sentiment.errors import ConfigError

TRUNCATIONS = ("head", "tail")  # which end of a long review is kept
READOUTS = ("last", "mean")  # what the classifier reads from the recurrent layer

# Per-model defaults that work well on IMDB (measured, see README). A flag the
# user gives always wins over these; these win over the dataclass defaults.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "lstm": {},
    "lstm_chrono": {},
    "gru": {},
    "bilstm": {},
    # SimpleRNN gradients explode or vanish over long inputs: a smaller step and
    # tighter clipping keep it from diverging, which is all it can be helped.
    "simple_rnn": {"learning_rate": 5e-4, "clipnorm": 0.5},
}


def _field(default: Any, help: str) -> Any:
    """Declare a config field with its default and the help text its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config:
    """Hyperparameters and data settings of one training run."""

    model: str = _field("lstm", "registered builder: lstm, simple_rnn, gru, bilstm, lstm_chrono")
    data: str = _field("imdb", "imdb (TFDS imdb_reviews), a .csv/.csv.gz path, or an aclImdb folder/tarball")
    seed: int = _field(42, "seeds shuffling, splits, weight init and dropout")
    val_fraction: float = _field(0.1, "share of the training reviews held out for validation")
    test_fraction: float = _field(0.1, "share held out for test (CSV only; other sources have a test split)")
    max_examples: int = _field(0, "cap on training reviews, for quick runs (0 = all)")
    vocab_size: int = _field(20_000, "vocabulary size, including padding and out-of-vocabulary tokens")
    max_len: int = _field(500, "reviews are truncated to this many tokens")
    truncate: str = _field("tail", "which tokens a long review keeps: tail (its last max_len, where reviews give their verdict) or head")
    embedding_dim: int = _field(64, "width of the learned word vectors")
    units: int = _field(64, "width of the recurrent layer (per direction for bilstm)")
    readout: str = _field("last", "what the classifier reads: last (final state) or mean (masked average of all states)")
    embedding_dropout: float = _field(0.4, "drops whole word vectors (SpatialDropout1D) against overfitting")
    dropout: float = _field(0.5, "dropout after the recurrent layer (not recurrent dropout: keeps cuDNN)")
    batch_size: int = _field(64, "reviews per batch")
    epochs: int = _field(10, "upper bound; early stopping usually ends sooner")
    learning_rate: float = _field(1e-3, "Adam step size")
    clipnorm: float = _field(1.0, "gradient norm clipping, against exploding RNN gradients")
    lr_decay: float = _field(0.5, "multiply the learning rate by this after every epoch (1 = constant)")
    patience: int = _field(2, "epochs without validation-loss improvement before stopping")
    mixed_precision: bool = _field(False, "mixed_float16 on GPU (ignored on CPU)")

    def validate(self) -> "Config":
        """Raise ConfigError naming the first impossible setting; return self when all are sane."""
        checks = [
            ("vocab_size", self.vocab_size >= 3, "at least 3 (padding, out-of-vocabulary and one word)"),
            ("max_len", self.max_len >= 1, "at least 1"),
            ("truncate", self.truncate in TRUNCATIONS, " or ".join(TRUNCATIONS)),
            ("readout", self.readout in READOUTS, " or ".join(READOUTS)),
            ("embedding_dim", self.embedding_dim >= 1, "at least 1"),
            ("units", self.units >= 1, "at least 1"),
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
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: it must be {expected}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("val_fraction + test_fraction must leave some reviews for training")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-serializable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        """Build a config from a dict, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a config saved by :func:`sentiment.artifacts.write_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def make_config(model: str = "lstm", **overrides: Any) -> Config:
    """Return the config for ``model``: dataclass defaults, then its preset, then overrides."""
    if model not in MODEL_PRESETS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODEL_PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(Config(model=model), **{**MODEL_PRESETS[model], **given}).validate()


def config_fields() -> list[dataclasses.Field]:
    """Return the dataclass fields, for building command-line flags from them."""
    return list(dataclasses.fields(Config))
