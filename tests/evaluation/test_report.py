"""The report: plots, report.md and metrics.json, and no stale plots from an earlier report."""

from __future__ import annotations

import numpy as np

from sentiment import artifacts
from sentiment.evaluation import metrics, report

LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
PROBS = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.6, 0.7, 0.4], dtype=np.float32)


def test_write_report_files_and_structure(tmp_path):
    texts = [f"text {i}" for i in range(8)]
    result = metrics.evaluate_predictions(texts, LABELS, PROBS, np.arange(8) * 80, max_len=400)
    history = [{"epoch": 0, "loss": 0.6, "val_loss": 0.5, "accuracy": 0.7, "val_accuracy": 0.75},
               {"epoch": 1, "loss": 0.4, "val_loss": 0.45, "accuracy": 0.8, "val_accuracy": 0.8}]
    path = report.write_report(tmp_path, "test model", result, LABELS, PROBS, history)
    for file in report.PLOTS.values():
        assert (tmp_path / file).stat().st_size > 1000, file
        assert (tmp_path / file).read_bytes()[:4] == b"\x89PNG"
    text = path.read_text()
    assert text.startswith("# test model") and "## Accuracy by review length" in text
    assert all(f"]({file})" in text for file in report.PLOTS.values())
    saved = artifacts.read_json(tmp_path / "metrics.json")
    assert {"roc_auc", "f1", "ece", "brier", "length", "confident_mistakes"} <= set(saved)
    assert [b["bucket"] for b in saved["length"]["buckets"]] == ["1-100", "101-200", "201-400", ">400"]


def test_rewritten_report_does_not_link_plots_of_the_earlier_one(tmp_path):
    texts = [f"text {i}" for i in range(8)]
    result = metrics.evaluate_predictions(texts, LABELS, PROBS, np.arange(8) * 80, max_len=400)
    history = [{"epoch": 0, "loss": 0.6, "val_loss": 0.5, "accuracy": 0.7, "val_accuracy": 0.75}]
    report.write_report(tmp_path, "first", result, LABELS, PROBS, history)
    assert (tmp_path / report.PLOTS["history"]).exists()
    path = report.write_report(tmp_path, "second, no history", result, LABELS, PROBS)
    assert not (tmp_path / report.PLOTS["history"]).exists()
    assert report.PLOTS["history"] not in path.read_text()
