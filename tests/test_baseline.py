"""The TF-IDF + logistic regression baseline: learns what the words say, not more, on the runs' own split."""

from __future__ import annotations

import numpy as np

from conftest import make_reviews, write_csv
from sentiment import baseline
from sentiment.config import make_config


def baseline_config(tmp_path, rows: list[tuple[str, int]]):
    """A config whose data is ``rows`` as a CSV, split 60/20/20 as the tiny runs are."""
    return make_config("lstm", data=str(write_csv(tmp_path / "r.csv", rows)), val_fraction=0.2, test_fraction=0.2)


def test_baseline_learns_separable_data_and_reports_both_splits(tmp_path):
    report = baseline.run_baseline(baseline_config(tmp_path, make_reviews(150)))
    assert report["model"] == baseline.BASELINE and report["examples"] == 30
    assert report["accuracy"] > 0.9 and report["validation"]["accuracy"] > 0.9
    assert report["parameters"] > 1


def test_baseline_is_at_chance_when_labels_do_not_follow_the_words(tmp_path):
    rows = make_reviews(400)
    labels = np.random.default_rng(0).permutation([y for _, y in rows])
    report = baseline.run_baseline(baseline_config(tmp_path, [(t, int(y)) for (t, _), y in zip(rows, labels)]))
    assert 0.3 < report["accuracy"] < 0.7


def test_refit_baseline_trains_on_validation_too_and_has_no_validation_figures(tmp_path):
    report = baseline.run_baseline(baseline_config(tmp_path, make_reviews(150)), refit=True)
    assert report["model"] == baseline.BASELINE_REFIT and report.get("validation") is None
    assert report["training"]["reviews_per_second"] > 0
