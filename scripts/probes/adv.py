"""Probe: adversarial training (Miyato et al. 2017) of the BiLSTM max_mean recipe: perturb word vectors along the loss gradient."""
import os, sys
import json, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
EPS = float(os.environ["EPS"]); MAXLEN = int(os.environ.get("MAXLEN", "400")); SEED = int(os.environ.get("SEED", "42"))
EPOCHS = int(os.environ.get("EPOCHS", "3")); OUT = os.environ["OUT"]
from sentiment import cli
cli.start_tensorflow_quietly()
import numpy as np, keras, tensorflow as tf
from sentiment import config as C, preprocessing, models, training, metrics
from sentiment.data import batching
cfg = C.make_config("lstm", data=os.environ["DATA"], bidirectional=True, readout="max_mean", max_len=MAXLEN, seed=SEED)
training.seed_everything(SEED)
splits = preprocessing.load_clean_splits(cfg)
vocab = preprocessing.learn_vocabulary(splits.train.texts, cfg)
pre = preprocessing.make_preprocessor(cfg, vocab)
ep = batching.epoch_variable()
train_ds = batching.make_train_dataset(splits.train, pre, cfg, ep)
CROP = int(os.environ.get("CROP", "0")); VIEWS = int(os.environ.get("VIEWS", "2"))
if CROP:
    def crop(x, y):
        n = tf.shape(x)[0]
        start = tf.random.uniform((), 0, tf.maximum(n - CROP, 0) + 1, dtype=tf.int32)
        return x[start:start + CROP], y
    cached = batching.encode(splits.train.records(), pre).cache()
    train_ds = cached.repeat(VIEWS).shuffle(len(splits.train) * VIEWS, seed=SEED).map(crop).padded_batch(cfg.batch_size).prefetch(4)
val_ds = batching.make_eval_dataset(splits.validation, pre, cfg)
test_ds = batching.make_eval_dataset(splits.test, pre, cfg)
D = cfg.embedding_dim
ids = keras.Input((None,), dtype="int32"); r = keras.Input((None, D))
x = keras.layers.Embedding(cfg.vocab_size, D, mask_zero=True, name="embedding")(ids)
x = keras.layers.Add()([x, r])
x = keras.layers.SpatialDropout1D(cfg.embedding_dropout)(x)
x = models.recurrent_layer(cfg, "float32")(x)
x = models.read_out(x, cfg.readout)
x = keras.layers.Dropout(cfg.dropout)(x)
p = keras.layers.Dense(1, activation="sigmoid")(x)
inner = keras.Model([ids, r], p)
bce = keras.losses.BinaryCrossentropy()

class AT(keras.Model):
    def __init__(self, inner):
        super().__init__(); self.inner = inner
        self.loss_m = keras.metrics.Mean(name="loss"); self.adv_m = keras.metrics.Mean(name="adv_loss"); self.acc = keras.metrics.BinaryAccuracy(name="accuracy")
    def zeros(self, x):
        return tf.zeros(tf.concat([tf.shape(x), [D]], 0))
    def call(self, x, training=False):
        return self.inner([x, self.zeros(x)], training=training)
    def train_step(self, data):
        x, y = data[0], tf.reshape(data[1], (-1, 1))
        z = self.zeros(x); v = self.trainable_variables
        with tf.GradientTape() as t:
            t.watch(z); p = self.inner([x, z], training=True); loss = bce(y, p)
        g = t.gradient(loss, [z] + v)
        grads = g[1:]
        if EPS > 0:
            gz = tf.stop_gradient(g[0])
            radv = EPS * gz / (tf.sqrt(tf.reduce_sum(tf.square(gz), axis=[1, 2], keepdims=True)) + 1e-12)
            with tf.GradientTape() as t2:
                adv = bce(y, self.inner([x, radv], training=True))
            grads = [tf.convert_to_tensor(a) + tf.convert_to_tensor(b) if b is not None else a for a, b in zip(grads, t2.gradient(adv, v))]
            self.adv_m.update_state(adv)
        self.optimizer.apply(grads, v)
        self.loss_m.update_state(loss); self.acc.update_state(y, p)
        return {"loss": self.loss_m.result(), "adv_loss": self.adv_m.result(), "accuracy": self.acc.result()}
    @property
    def metrics(self): return [self.loss_m, self.adv_m, self.acc]

model = AT(inner)
model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clipnorm))
def score(ds, split):
    p = model.predict(ds, verbose=0).ravel(); y = split.labels
    return metrics.classification_metrics(y, p)["accuracy"], float(bce(y.reshape(-1, 1), p.reshape(-1, 1))), p
rows = []
class Eval(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        ep.assign(epoch); self.model.optimizer.learning_rate.assign(cfg.learning_rate * cfg.lr_decay ** epoch); self.t = time.time()
    def on_epoch_end(self, epoch, logs=None):
        t = time.time() - self.t
        va, vl, _ = score(val_ds, splits.validation); ta, tl, tp = score(test_ds, splits.test)
        np.save(f"{OUT}-e{epoch+1}-test.npy", tp); np.save(f"{OUT}-e{epoch+1}-val.npy", score(val_ds, splits.validation)[2])
        rows.append(dict(epoch=epoch + 1, secs=round(t), train_acc=round(float(logs["accuracy"]), 4), val_acc=va, val_loss=vl, test_acc=ta, test_loss=tl))
        print(json.dumps(rows[-1]), flush=True)
model.fit(train_ds, epochs=EPOCHS, callbacks=[Eval()], verbose=2)
