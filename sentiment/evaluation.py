"""How good is a model: scikit-learn metrics, length buckets, calibration, error analysis, plots, report.

Used at the end of every training run and on demand (``evaluate.py``) for any run
directory or exported model on any supported dataset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

from sentiment import artifacts

log = logging.getLogger(__name__)

# Upper bounds (tokens, inclusive) of the length buckets; the last bucket is open.
LENGTH_BUCKETS = (100, 200, 400)
CALIBRATION_BINS = 10
PLOTS = {
    "history": "plot_history.png",
    "roc": "plot_roc.png",
    "confusion": "plot_confusion.png",
    "length": "plot_length_buckets.png",
    "reliability": "plot_reliability.png",
}
Scorer = Callable[[list[str]], np.ndarray]  # raw reviews → P(positive) float32 [n]


# ---------------------------------------------------------------------------
# Predictions


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over (inputs, labels) batches: return labels int32 [n] and P(positive) float32 [n]."""
    labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in ds]).astype(np.int32)
    probs = model.predict(ds.map(lambda inputs, y: inputs), verbose=0)
    return labels, np.asarray(probs, dtype=np.float32).reshape(-1)


def score_in_length_order(score_batch: Scorer, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """Score raw texts in batches of similar length (less padding), returned in the original order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = np.zeros(len(texts), np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        probs[idx] = np.asarray(score_batch([texts[i] for i in idx]), np.float32).reshape(-1)
    return probs


# ---------------------------------------------------------------------------
# Metrics


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Return threshold and probability metrics of P(positive) against 0/1 labels (all from scikit-learn)."""
    predicted = (probs >= threshold).astype(np.int32)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(skm.log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probs)) if both_classes else None,
        "brier": float(skm.brier_score_loss(labels, probs, pos_label=1)),
        "ece": expected_calibration_error(labels, probs),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "classification_report": skm.classification_report(
            labels, predicted, labels=[0, 1], target_names=["negative", "positive"], output_dict=True, zero_division=0
        ),
        "examples": int(len(labels)),
        "positives": int(labels.sum()),
    }


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Return ECE: the example-weighted mean |observed rate - P(positive)| gap over equal-width bins.

    scikit-learn has no ECE; this uses the same uniform bins as its calibration_curve.
    """
    which = np.minimum((probs * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            gap += in_bin.sum() * abs(labels[in_bin].mean() - probs[in_bin].mean())
    return float(gap / max(len(labels), 1))


def length_buckets(labels: np.ndarray, probs: np.ndarray, lengths: np.ndarray, max_len: int) -> dict:
    """Return accuracy per review-length bucket (tokens after standardization) and the share truncated."""
    predicted = (probs >= 0.5).astype(np.int32)
    edges = [0, *LENGTH_BUCKETS, np.inf]
    buckets = []
    for low, high in zip(edges[:-1], edges[1:]):
        mask = (lengths > low) & (lengths <= high)
        name = f"{low + 1}-{int(high)}" if np.isfinite(high) else f">{low}"
        acc = float((predicted[mask] == labels[mask]).mean()) if mask.any() else None
        buckets.append({"bucket": name, "count": int(mask.sum()), "accuracy": acc})
    return {"buckets": buckets, "truncated_share": float((lengths > max_len).mean()) if len(lengths) else 0.0, "max_len": max_len}


def confident_mistakes(texts: list[str], labels: np.ndarray, probs: np.ndarray, k: int = 5, chars: int = 300) -> list[dict]:
    """Return the ``k`` wrong predictions made with the highest confidence, texts cut to ``chars``."""
    wrong = np.flatnonzero((probs >= 0.5).astype(np.int32) != labels)
    worst = wrong[np.argsort(-np.abs(probs[wrong] - 0.5), kind="stable")][:k]
    return [
        {
            "label": "positive" if labels[i] else "negative",
            "probability": round(float(probs[i]), 4),
            "text": texts[i] if len(texts[i]) <= chars else texts[i][:chars] + "...",
        }
        for i in worst
    ]


def evaluate_predictions(texts: list[str], labels: np.ndarray, probs: np.ndarray, lengths: np.ndarray, max_len: int) -> dict:
    """Return every evaluation figure for one split's predictions."""
    return {
        **classification_metrics(labels, probs),
        "length": length_buckets(labels, probs, lengths, max_len),
        "confident_mistakes": confident_mistakes(texts, labels, probs),
    }


# ---------------------------------------------------------------------------
# Plots and report


def pyplot() -> Any:
    """Return matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    """Plot loss and accuracy per epoch, training vs validation."""
    plt = pyplot()
    epochs = [int(row.get("epoch", i)) + 1 for i, row in enumerate(history)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [row.get(key) for row in history], "o-", label="train")
        ax.plot(epochs, [row.get(f"val_{key}") for row in history], "o-", label="validation")
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_roc(labels: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """Plot the ROC curve with its AUC."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    skm.RocCurveDisplay.from_predictions(labels, probs, ax=ax, name="model", plot_chance_level=True)
    ax.set_title("ROC curve")
    save_figure(fig, path)


def plot_confusion(labels: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """Plot the confusion matrix at threshold 0.5."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    skm.ConfusionMatrixDisplay.from_predictions(
        labels, (probs >= 0.5).astype(int), labels=[0, 1], display_labels=["negative", "positive"], ax=ax, colorbar=False
    )
    ax.set_title("confusion matrix")
    save_figure(fig, path)


def plot_length_buckets(length: dict, path: Path, title: str = "accuracy by review length") -> None:
    """Bar chart of accuracy per length bucket, with counts on the bars."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [b["bucket"] for b in length["buckets"]]
    accs = [b["accuracy"] or 0.0 for b in length["buckets"]]
    bars = ax.bar(names, accs, color="tab:blue")
    for bar, b in zip(bars, length["buckets"]):
        ax.annotate(f"n={b['count']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set(xlabel=f"tokens (truncated to {length['max_len']}: {length['truncated_share']:.1%} of reviews)", ylabel="accuracy", title=title)
    ax.set_ylim(min(0.5, min(accs, default=0.5)), 1.0)
    save_figure(fig, path)


def plot_grouped_bars(ax, groups: list[str], series: dict[str, list[float | None]]) -> None:
    """Draw one bar per series within each group (None drawn as 0), with a legend."""
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + i * width, [v or 0.0 for v in values], width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups)
    present = [v for values in series.values() for v in values if v is not None]
    if present:  # zoom on the differences; accuracies of these models all sit well above chance
        ax.set_ylim(max(0.0, min(present) - 0.05), min(1.0, max(present) + 0.03))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(len(series), 4), frameon=False)


def plot_reliability(labels: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """Reliability diagram: observed positive rate vs predicted probability."""
    from sklearn.calibration import CalibrationDisplay

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    CalibrationDisplay.from_predictions(labels, probs, n_bins=CALIBRATION_BINS, ax=ax, name="model")
    ax.set_title("reliability diagram")
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    """Save a figure atomically and free it."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    pyplot().close(fig)
    tmp.replace(path)


def write_plots(out_dir: Path, labels: np.ndarray, probs: np.ndarray, report: dict, history: list[dict] | None) -> None:
    """Write every plot of the report into ``out_dir``."""
    if history:
        plot_history(history, out_dir / PLOTS["history"])
    if len(np.unique(labels)) == 2:
        plot_roc(labels, probs, out_dir / PLOTS["roc"])
    plot_confusion(labels, probs, out_dir / PLOTS["confusion"])
    plot_length_buckets(report["length"], out_dir / PLOTS["length"])
    plot_reliability(labels, probs, out_dir / PLOTS["reliability"])


def render_report(title: str, report: dict, plots_present: list[str]) -> str:
    """Return report.md: headline metrics, length buckets, calibration, mistakes, plots by relative path."""
    m = report
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"# {title}", "", f"Split: {m.get('split', 'test')}, {m['examples']} reviews ({m['positives']} positive).", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "loss", "brier", "ece"):
        lines.append(f"| {key} | {fmt(m[key])} |")
    training = m.get("training")
    if training:
        lines += [
            f"| training time (s) | {training['wall_seconds']} |",
            f"| throughput (reviews/s, tokens/s) | {training['reviews_per_second']}, {training['tokens_per_second']} |",
            f"| parameters | {m.get('parameters')} |",
        ]
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    lines += ["", f"Confusion matrix (rows true, columns predicted; negative, positive): [[{tn}, {fp}], [{fn}, {tp}]]", ""]
    lines += ["## Accuracy by review length", "", "| tokens | reviews | accuracy |", "| --- | --- | --- |"]
    lines += [f"| {b['bucket']} | {b['count']} | {fmt(b['accuracy'])} |" for b in m["length"]["buckets"]]
    lines += ["", f"{m['length']['truncated_share']:.1%} of reviews are longer than max_len={m['length']['max_len']} and were truncated.", ""]
    lines += ["## Most confident mistakes", ""]
    lines += [f"- true {x['label']}, P(positive)={x['probability']}: {x['text']!r}" for x in m["confident_mistakes"]] or ["none"]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({PLOTS[name]})" for name in PLOTS if name in plots_present]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, title: str, report: dict, labels: np.ndarray, probs: np.ndarray, history: list[dict] | None = None) -> Path:
    """Write plots, ``report.md`` and ``metrics.json`` into ``out_dir``; return the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plots(out_dir, labels, probs, report, history)
    present = [name for name, file in PLOTS.items() if (out_dir / file).exists()]
    artifacts.write_text(out_dir / "report.md", render_report(title, report, present))
    artifacts.write_json(out_dir / artifacts.METRICS_FILE, report)  # last: its presence marks the run finished
    log.info("report written to %s", out_dir / "report.md")
    return out_dir / "report.md"
