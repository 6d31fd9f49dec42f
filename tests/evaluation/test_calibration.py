"""Temperature scaling and threshold choice: fitted on validation reviews, applied alike by every engine."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.config import Config, parse_threshold
from sentiment.errors import ConfigError
from sentiment.evaluation import calibration, metrics


def overconfident(n: int = 4000, temperature: float = 2.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z / temperature), reported as sigmoid(z): a model ``temperature`` times too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 4.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z / temperature))).astype(np.int32)
    return labels, (1 / (1 + np.exp(-z))).astype(np.float32)


def test_fitted_temperature_recovers_the_overconfidence_and_lowers_ece():
    labels, probs = overconfident()
    temperature = calibration.fit_temperature(labels, probs)
    assert temperature == pytest.approx(2.5, rel=0.15)
    calibrated = calibration.apply_temperature(probs, temperature)
    assert metrics.expected_calibration_error(labels, calibrated) < metrics.expected_calibration_error(labels, probs) / 2
    # Monotone and fixed at 0.5: no label at 0.5 and no ranking changes.
    assert np.array_equal(calibrated >= 0.5, probs >= 0.5)
    assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(probs, kind="stable"))


def test_an_already_calibrated_model_keeps_a_temperature_near_one():
    labels, probs = overconfident(temperature=1.0, seed=1)
    assert calibration.fit_temperature(labels, probs) == pytest.approx(1.0, abs=0.15)


def test_thresholds_meet_their_targets_on_the_reviews_they_were_chosen_on():
    labels, probs = overconfident(seed=2)
    for target in (0.8, 0.95):
        t = calibration.choose_threshold(labels, probs, f"precision={target}")
        assert metrics.classification_metrics(labels, probs, t)["precision"] >= target
        assert metrics.classification_metrics(labels, probs, t + 1e-3)["recall"] <= metrics.classification_metrics(labels, probs, t)["recall"]
        r = calibration.choose_threshold(labels, probs, f"recall={target}")
        assert metrics.classification_metrics(labels, probs, r)["recall"] >= target
    best = calibration.choose_threshold(labels, probs, "f1")
    f1 = lambda t: metrics.classification_metrics(labels, probs, t)["f1"]  # noqa: E731
    assert f1(best) >= max(f1(t) for t in np.linspace(0.05, 0.95, 19))
    assert calibration.choose_threshold(labels, probs, "0.7") == 0.7
    with pytest.raises(ConfigError, match="no threshold reaches precision"):
        calibration.choose_threshold(np.array([0, 1, 0, 1]), np.array([0.9, 0.1, 0.8, 0.2]), "precision=0.99")


def test_calibrate_reports_before_and_after_and_can_skip_the_fit():
    labels, probs = overconfident(seed=3)
    fitted = calibration.calibrate(labels, probs, "f1")
    assert fitted["method"] == "temperature" and fitted["validation"]["ece_after"] < fitted["validation"]["ece_before"]
    skipped = calibration.calibrate(labels, probs, "0.5", fit=False)
    assert skipped["temperature"] == 1.0 and skipped["threshold"] == 0.5
    assert skipped["validation"]["ece_after"] == skipped["validation"]["ece_before"]


def test_threshold_settings_are_checked_in_the_config():
    assert parse_threshold("0.7") == ("fixed", 0.7) and parse_threshold("f1") == ("f1", None)
    assert parse_threshold("precision=0.9") == ("precision", 0.9) and parse_threshold("recall=1") == ("recall", 1.0)
    for bad in ("1.5", "precision", "recall=0", "accuracy=0.9", "f1=2", ""):
        with pytest.raises(ConfigError, match="threshold="):
            Config(threshold=bad)
    with pytest.raises(ConfigError, match="--refit trains on"):
        Config(threshold="f1", refit=True)
    Config(threshold="0.6", refit=True)  # a number needs no validation reviews
