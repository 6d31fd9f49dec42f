"""Probe: stack separately trained runs' logits (same seed's split) with weights fitted on validation; McNemar against the first run."""
import sys, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
import numpy as np
from sentiment import cli
cli.start_tensorflow_quietly()
from sentiment import calibration, config as C, preprocessing, models, evaluation, metrics
from sklearn.linear_model import LogisticRegression
runs = [Path(r) for r in sys.argv[1:]]
cfg = C.Config.from_dict(json.loads((runs[0] / "config.json").read_text()))
splits = preprocessing.load_clean_splits(cfg)
def probs(run, split):
    cache = run / f"probe_{split}.npy"
    if cache.exists(): return np.load(cache)
    m = models.load_model(run / "model.keras")
    p = evaluation.score_in_length_order(evaluation.model_scorer(m), getattr(splits, split).texts)
    np.save(cache, p); return p
logit = calibration.to_logits
V = np.stack([logit(probs(r, "validation").ravel()) for r in runs], 1)
T = np.stack([logit(probs(r, "test").ravel()) for r in runs], 1)
yv, yt = splits.validation.labels, splits.test.labels
sig = lambda z: 1 / (1 + np.exp(-z))
for r, col in zip(runs, T.T):
    print(r.name, "test", metrics.classification_metrics(yt, sig(col))["accuracy"])
lr = LogisticRegression(C=1.0).fit(V, yv)
ps = lr.predict_proba(T)[:, 1]
print("stack weights", lr.coef_, lr.intercept_, "test", metrics.classification_metrics(yt, ps)["accuracy"])
print("vs first", metrics.mcnemar_test(yt, ps, sig(T[:, 0])))
avg = sig(T.mean(1))
print("plain average test", metrics.classification_metrics(yt, avg)["accuracy"])
# The strongest cheap anchor on the same training reviews, paired on the same test reviews.
from sentiment import baseline
nb = baseline.run_baseline(cfg, False, "nbsvm_bi")
nb_probs = np.asarray(nb["predictions"]["probabilities"])
print("nbsvm_bi test", nb["accuracy"], "stack vs nbsvm_bi", metrics.mcnemar_test(yt, ps, nb_probs),
      "stack test interval", metrics.accuracy_interval(yt, ps))
