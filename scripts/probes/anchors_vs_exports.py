"""Probe: the shipped exports against every anchor, paired on the test reviews of their own split.

usage: python scripts/probes/anchors_vs_exports.py DATA SPLIT_SEED EXPORT_DIR... (anchors fitted on the same training reviews;
the fastText anchor, the only one whose seed matters, once per seed 42, 43, 44)
"""
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
import numpy as np

from sentiment import cli

cli.start_tensorflow_quietly()
from sentiment import baseline, metrics, prediction, preprocessing, training
from sentiment.config import Config

data, split_seed, exports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
config = Config(data=data, split_seed=split_seed, seed=42)
test = preprocessing.load_clean_splits(config).test
right = {}
for spec in exports:
    scorer, _, name, threshold = prediction.load_scorer(spec, "saved_models")
    probs = scorer(test.texts)
    right[spec] = (probs >= threshold) == test.labels
    print(f"{spec}: test {right[spec].mean():.4f} {metrics.accuracy_interval(test.labels, probs, threshold)}", flush=True)
for anchor in baseline.ANCHORS:
    for seed in (42, 43, 44) if anchor == "fasttext" else (42,):
        training.seed_everything(seed)
        started = time.perf_counter()
        report = baseline.run_baseline(dataclasses.replace(config, seed=seed), anchor=anchor)
        anchor_right = (np.asarray(report["predictions"]["probabilities"]) >= 0.5) == test.labels
        line = f"{anchor} seed {seed}: test {report['accuracy']:.4f} ({time.perf_counter() - started:.0f} s)"
        for spec, model_right in right.items():
            # McNemar on correctness: "probability" 1 where right, against all-ones labels.
            test_ = metrics.mcnemar_test(np.ones(len(test)), model_right.astype(float), anchor_right.astype(float))
            line += f" | {spec} only-model/only-anchor {test_['a_only']}/{test_['b_only']} p={test_['p_value']:.3g}"
        print(line, flush=True)
