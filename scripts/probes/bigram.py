"""Probe: recurrent-only model whose input at step t is emb(word_t) + emb(hash(word_{t-1}, word_t))."""
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
BUCKETS = int(os.environ.get("BUCKETS", "0"))
BIDIM = int(os.environ.get("BIDIM", "0"))
import train
from sentiment import cli
cli.start_tensorflow_quietly()
import keras
from sentiment import models

@keras.saving.register_keras_serializable(package="probe")
class BigramIds(keras.layers.Layer):
    def __init__(self, vocab, buckets, **kw):
        super().__init__(**kw); self.vocab = vocab; self.buckets = buckets
    def call(self, ids):
        prev = keras.ops.pad(ids[:, :-1], [[0, 0], [1, 0]])
        h = keras.ops.mod(prev * self.vocab + ids, self.buckets) + 1
        return keras.ops.where(keras.ops.logical_and(prev > 0, ids > 0), h, keras.ops.zeros_like(h))
    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "buckets": self.buckets}

def build_model(config, ngram_idf=None):
    dtype = "float32"
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding")(token_ids)
    if BUCKETS:
        b = BigramIds(config.vocab_size, BUCKETS, name="bigram_ids")(token_ids)
        y = keras.layers.Embedding(BUCKETS + 1, BIDIM or config.embedding_dim, name="bigram_embedding")(b)
        if BIDIM and BIDIM != config.embedding_dim:
            y = keras.layers.Dense(config.embedding_dim, use_bias=False, name="bigram_projection")(y)
        x = keras.layers.Add(name="word_and_bigram")([x, y])
    x = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(x)
    x = models.recurrent_layer(config, dtype)(x)
    x = models.read_out(x, config.readout)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    p = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(token_ids, p, name=config.model)

models.build_model = build_model
sys.exit(cli.run_main(train.main))
