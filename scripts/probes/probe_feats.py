"""Probe: a linear probe (logistic regression, 3,000 training reviews) of the pooled states of a random encoder and of ENC."""
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from sentiment import cli
cli.start_tensorflow_quietly()
import numpy as np, keras
from sentiment import config as C, preprocessing, models, pretraining
from sentiment.data import batching
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
cfg = C.make_config("lstm", data=os.environ["DATA"], bidirectional=True, readout="max_mean", max_len=800, vocab_size=40000, embedding_dim=128, seed=42)
splits = preprocessing.load_clean_splits(cfg)
pre = preprocessing.make_preprocessor(cfg, preprocessing.learn_vocabulary(splits.train.texts, cfg))
tr = splits.train.bounded(3000); va = splits.validation
def feats(model, split):
    f = keras.Model(model.input, model.get_layer("max_and_mean").output)
    return f.predict(batching.make_eval_dataset(split, pre, cfg), verbose=0)
for enc in ["none", os.environ["ENC"]]:
    keras.utils.set_random_seed(0)
    m = models.build_model(cfg)
    if enc != "none": pretraining.load_encoder(m, enc)
    Xt, Xv = feats(m, tr), feats(m, va)
    print(enc, "mean|f|", np.abs(Xt).mean(), "std across reviews / mean|f|", Xt.std(0).mean() / np.abs(Xt).mean())
    s = StandardScaler().fit(Xt)
    for c in [0.01, 0.1, 1.0]:
        lr = LogisticRegression(C=c, max_iter=2000).fit(s.transform(Xt), tr.labels)
        print("  C", c, "train", lr.score(s.transform(Xt), tr.labels), "val", lr.score(s.transform(Xv), va.labels))
