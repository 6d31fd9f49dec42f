"""Probe: ULMFiT-style fine-tuning of the pretrained encoder (the head alone on a frozen encoder first, then everything);
NORM=1 standardizes the pooled readout with a Normalization layer adapted once on the training reviews' pooled states."""
import os, sys
import json, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
FROZEN = int(os.environ.get("FROZEN", "1")); EPOCHS = int(os.environ.get("EPOCHS", "3")); LR2 = float(os.environ.get("LR2", "5e-4"))
ENC = os.environ["ENC"]  # an encoder folder under --pretrain-dir, or none
OUT, DATA = os.environ["OUT"], os.environ["DATA"]
from sentiment import cli
cli.start_tensorflow_quietly()
import numpy as np, keras
from sentiment import config as C, preprocessing, models, training, metrics, pretraining
from sentiment.data import batching
cfg = C.make_config("lstm", data=DATA, bidirectional=True, readout="max_mean", max_len=800, vocab_size=40000, embedding_dim=128, seed=42, dropout=float(os.environ.get("DROPOUT", "0.5")), embedding_dropout=float(os.environ.get("EMB_DROPOUT", "0.4")))
training.seed_everything(42)
splits = preprocessing.load_clean_splits(cfg)
pre = preprocessing.make_preprocessor(cfg, preprocessing.learn_vocabulary(splits.train.texts, cfg))
ep = batching.epoch_variable()
train_ds = batching.make_train_dataset(splits.train, pre, cfg, ep)
val_ds, test_ds = (batching.make_eval_dataset(s, pre, cfg) for s in (splits.validation, splits.test))
NORM = int(os.environ.get("NORM", "0"))
if NORM:
    norm = keras.layers.Normalization(name="readout_norm")
    _read_out = models.read_out
    models.read_out = lambda states, readout: norm(_read_out(states, readout))
model = models.build_model(cfg)
if ENC != "none":
    pretraining.load_encoder(model, ENC)
if NORM:  # fixed statistics of the starting encoder's pooled states: no batch statistics, so training and inference agree
    pooled = keras.Model(model.input, model.get_layer("max_and_mean").output)
    norm.adapt(pooled.predict(batching.make_eval_dataset(splits.train, pre, cfg), verbose=0))
def score(ds, split):
    p = model.predict(ds, verbose=0).ravel()
    return metrics.classification_metrics(split.labels, p)["accuracy"], p
epoch = 0
def run(epochs, lr, frozen):
    global epoch
    for name in pretraining.ENCODER_LAYERS:
        model.get_layer(name).trainable = not frozen
    model.compile(optimizer=keras.optimizers.Adam(lr, clipnorm=cfg.clipnorm), loss="binary_crossentropy", metrics=["accuracy"])
    for k in range(epochs):
        ep.assign(epoch); model.optimizer.learning_rate.assign(lr * cfg.lr_decay ** k); t = time.time()
        h = model.fit(train_ds, epochs=1, verbose=0).history
        va, vp = score(val_ds, splits.validation); ta, tp = score(test_ds, splits.test); epoch += 1
        np.save(f"{OUT}-e{epoch}-val.npy", vp); np.save(f"{OUT}-e{epoch}-test.npy", tp)
        print(json.dumps(dict(epoch=epoch, frozen=frozen, secs=round(time.time() - t), train_acc=round(h["accuracy"][0], 4), val_acc=va, test_acc=ta)), flush=True)
if FROZEN:
    run(FROZEN, cfg.learning_rate, True)
run(EPOCHS, LR2, False)
