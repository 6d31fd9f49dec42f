"""Probe: stack a run's logits with NBSVM-bi's (weights fitted on the validation reviews); McNemar against NBSVM-bi alone.

usage: python scripts/probes/stack_anchor.py RUN_DIR...   (runs of one split; each is stacked with the anchor on its own)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
import numpy as np

from sentiment import cli

cli.start_tensorflow_quietly()
from sklearn.linear_model import LogisticRegression

from sentiment import baseline, calibration, evaluation, metrics, models, preprocessing
from sentiment import config as C

runs = [Path(r) for r in sys.argv[1:]]
cfg = C.Config.from_dict(json.loads((runs[0] / "config.json").read_text()))
splits = preprocessing.load_clean_splits(cfg)
yv, yt = splits.validation.labels, splits.test.labels


def probs(run: Path, split: str) -> np.ndarray:
    """The run's P(positive) on a split, cached beside it."""
    cache = run / f"probe_{split}.npy"
    if not cache.exists():
        scorer = evaluation.model_scorer(models.load_model(run / "model.keras"))
        np.save(cache, evaluation.score_in_length_order(scorer, getattr(splits, split).texts))
    return np.load(cache).ravel()


anchor = baseline.make_nbsvm_bi(42).fit(preprocessing.standardize_texts(splits.train.texts), splits.train.labels)
nb_v, nb_t = (anchor.predict_proba(preprocessing.standardize_texts(getattr(splits, s).texts))[:, 1] for s in ("validation", "test"))
print("nbsvm_bi test", metrics.classification_metrics(yt, nb_t)["accuracy"])
logit = calibration.to_logits
for run in runs:
    V = np.stack([logit(probs(run, "validation")), logit(nb_v)], 1)
    T = np.stack([logit(probs(run, "test")), logit(nb_t)], 1)
    mix = LogisticRegression(C=1.0).fit(V, yv)
    stacked = mix.predict_proba(T)[:, 1]
    print(run.name, "run test", metrics.classification_metrics(yt, probs(run, "test"))["accuracy"],
          "| stack weights run/nbsvm", np.round(mix.coef_[0], 3), "| stacked test", metrics.classification_metrics(yt, stacked)["accuracy"],
          metrics.accuracy_interval(yt, stacked), "| vs nbsvm_bi", metrics.mcnemar_test(yt, stacked, nb_t), flush=True)
