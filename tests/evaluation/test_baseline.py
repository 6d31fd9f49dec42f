"""The cheap anchors (TF-IDF + LR, NBSVM-bi): learn what the words say, not more, on the runs' own split."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from conftest import make_reviews, write_csv

from sentiment.config import make_config
from sentiment.evaluation import anchors, baseline


def baseline_config(tmp_path, rows: list[tuple[str, int]]):
    """A config whose data is ``rows`` as a CSV, split 60/20/20 as the tiny runs are."""
    return make_config("lstm", data=str(write_csv(tmp_path / "r.csv", rows)), val_fraction=0.2, test_fraction=0.2)


@pytest.mark.parametrize("anchor", list(anchors.ANCHORS))
def test_anchor_learns_separable_data_and_reports_both_splits(tmp_path, anchor):
    report = baseline.run_baseline(baseline_config(tmp_path, make_reviews(150)), anchor=anchor)
    assert report["model"] == anchor and report["examples"] == 30
    assert report["accuracy"] > 0.9 and report["validation"]["accuracy"] > 0.9
    assert report["parameters"] > 1


@pytest.mark.parametrize("anchor", list(anchors.ANCHORS))
def test_anchor_is_at_chance_when_labels_do_not_follow_the_words(tmp_path, anchor):
    rows = make_reviews(400)
    labels = np.random.default_rng(0).permutation([y for _, y in rows])
    report = baseline.run_baseline(baseline_config(tmp_path, [(t, int(y)) for (t, _), y in zip(rows, labels)]), anchor=anchor)
    assert 0.3 < report["accuracy"] < 0.7


def test_refit_baseline_trains_on_validation_too_and_has_no_validation_figures(tmp_path):
    report = baseline.run_baseline(baseline_config(tmp_path, make_reviews(150)), refit=True)
    assert report["model"] == baseline.BASELINE_REFIT and report.get("validation") is None
    assert report["training"]["reviews_per_second"] > 0


def test_log_count_ratio_signs_words_by_the_class_they_occur_in():
    # Columns: a word only in positive reviews, one only in negative ones, one in both equally.
    features = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]]))
    ratio = anchors.NBLogCountRatio(alpha=1.0).fit(features, np.array([1, 1, 0, 0])).ratio_
    assert ratio[0] > 0 > ratio[1] and ratio[2] == pytest.approx(0.0)
    assert ratio[0] == pytest.approx(-ratio[1])
    scaled = anchors.NBLogCountRatio().fit(features, np.array([1, 1, 0, 0])).transform(features)
    assert scaled[0, 0] == pytest.approx(ratio[0]) and scaled[2, 0] == 0


def test_unknown_anchor_is_a_config_error(tmp_path):
    from sentiment.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline.run_baseline(baseline_config(tmp_path, make_reviews(60)), anchor="bert")


def test_the_fasttext_anchor_is_the_same_for_the_same_seed_whatever_the_global_state():
    import keras
    from conftest import make_reviews

    texts, labels = zip(*make_reviews(300, seed=3))
    scores = []
    for global_seed in (1, 2):  # what evaluate.py's process happens to be in
        keras.utils.set_random_seed(global_seed)
        scores.append(anchors.make_fasttext(42).fit(list(texts), np.array(labels)).predict_proba(list(texts))[:, 1])
    np.testing.assert_array_equal(scores[0], scores[1])
