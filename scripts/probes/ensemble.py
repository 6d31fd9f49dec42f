"""Probe: average the logits of adv.py runs (their saved per-epoch predictions), alone and stacked with a run's (stack.py's cache).

    DATA=reviews.csv.gz python scripts/probes/ensemble.py RUN_DIR OUT_PREFIX:EPOCH [OUT_PREFIX:EPOCH ...]
"""
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from sentiment import cli
cli.start_tensorflow_quietly()
import numpy as np
from sklearn.linear_model import LogisticRegression
from sentiment import calibration, config as C, preprocessing

splits = preprocessing.load_clean_splits(C.make_config("lstm", data=os.environ["DATA"]))
yv, yt = splits.validation.labels, splits.test.labels
logit = calibration.to_logits
run = Path(sys.argv[1])
members = [m.rsplit(":", 1) for m in sys.argv[2:]]
ens = {split: np.mean([logit(np.load(f"{prefix}-e{epoch}-{split}.npy").ravel()) for prefix, epoch in members], 0) for split in ("val", "test")}
print("recurrent ensemble: val %.4f test %.4f" % (((ens["val"] > 0) == yv).mean(), ((ens["test"] > 0) == yt).mean()))
wide = {split: logit(np.load(run / f"probe_{name}.npy").ravel()) for split, name in (("val", "validation"), ("test", "test"))}
print("%s alone: val %.4f test %.4f" % (run.name, ((wide["val"] > 0) == yv).mean(), ((wide["test"] > 0) == yt).mean()))
stack = LogisticRegression().fit(np.stack([wide["val"], ens["val"]], 1), yv)
probs = stack.predict_proba(np.stack([wide["test"], ens["test"]], 1))[:, 1]
print("stacked on validation: weights", stack.coef_.round(3), "test %.4f" % ((probs > 0.5) == yt).mean())
