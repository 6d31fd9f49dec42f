"""Rendering an evaluation: PNG plots (matplotlib) and report.md, written atomically beside metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from sentiment import artifacts
from sentiment.evaluation.metrics import CALIBRATION_BINS

log = logging.getLogger(__name__)

PLOTS = {
    "history": "plot_history.png",
    "roc": "plot_roc.png",
    "confusion": "plot_confusion.png",
    "length": "plot_length_buckets.png",
    "reliability": "plot_reliability.png",
}


def pyplot() -> Any:
    """Return matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_key(history: list[dict[str, float]]) -> str:
    """The per-epoch accuracy a history has: ``accuracy``, or a stacked model's ``branch_accuracy`` (its branches' mean, each alone)."""
    return "branch_accuracy" if history and "branch_accuracy" in history[0] else "accuracy"


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    """Plot loss and accuracy per epoch, training vs validation."""
    plt = pyplot()
    epochs = [int(row.get("epoch", i)) + 1 for i, row in enumerate(history)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", accuracy_key(history))):
        ax.plot(epochs, [row.get(key) for row in history], "o-", label="train")
        ax.plot(epochs, [row.get(f"val_{key}") for row in history], "o-", label="validation")
        title = "branch accuracy per epoch (the two branches' mean, each alone)" if key == "branch_accuracy" else f"{key} per epoch"
        ax.set(xlabel="epoch", ylabel=key, title=title)
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
    fig.tight_layout()
    try:
        with artifacts.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        pyplot().close(fig)


def write_plots(out_dir: Path, labels: np.ndarray, probs: np.ndarray, report: dict, history: list[dict] | None) -> list[str]:
    """Write the plots this report has data for into ``out_dir``; return their names (keys of PLOTS)."""
    drawn = []
    if history:
        plot_history(history, out_dir / PLOTS["history"])
        drawn.append("history")
    if len(np.unique(labels)) == 2:
        plot_roc(labels, probs, out_dir / PLOTS["roc"])
        drawn.append("roc")
    plot_confusion(labels, probs, out_dir / PLOTS["confusion"])
    plot_length_buckets(report["length"], out_dir / PLOTS["length"])
    plot_reliability(labels, probs, out_dir / PLOTS["reliability"])
    return drawn + ["confusion", "length", "reliability"]


def render_report(title: str, report: dict, plots_present: list[str]) -> str:
    """Return report.md: headline metrics, length buckets, calibration, mistakes, plots by relative path."""
    m = report
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"# {title}", "", f"Split: {m.get('split', 'test')}, {m['examples']} reviews ({m['positives']} positive).", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    low, high = m.get("accuracy_ci95") or (None, None)
    lines.append(f"| accuracy | {fmt(m['accuracy'])}" + (f" (95% bootstrap interval {low:.4f}–{high:.4f})" if low is not None else "") + " |")
    for key in ("precision", "recall", "f1", "roc_auc", "loss", "brier", "ece"):
        lines.append(f"| {key} | {fmt(m[key])} |")
    cal = m.get("calibration")
    if cal:
        test = cal.get("test", {})
        lines.append(f"| calibration | temperature {cal['temperature']:.3f} fitted on validation reviews: test ECE {fmt(test.get('ece_before'))} → "
                     f"{fmt(test.get('ece_after'))}, log-loss {fmt(test.get('loss_before'))} → {fmt(test.get('loss_after'))} |")
        lines.append(f"| threshold | {cal['threshold']:.4f} ({cal['target']}): test accuracy {fmt(test.get('accuracy_at_threshold'))}, "
                     f"precision {fmt(test.get('precision_at_threshold'))}, recall {fmt(test.get('recall_at_threshold'))} |")
    training = m.get("training")
    if training:
        lines += [
            f"| training time (s) | {training['wall_seconds']} |",
            f"| throughput (reviews/s, tokens/s) | {training['reviews_per_second']}, {training['tokens_per_second']} |",
            f"| parameters | {m.get('parameters')} |",
        ]
        if training.get("refit"):
            refit = training["refit"]
            before = f"; test accuracy before it {refit['test_accuracy_before']:.4f}" if "test_accuracy_before" in refit else ""
            lines.append(f"| refit on train + validation | {refit['epochs']} epoch(s), {refit['reviews']} reviews{before} (validation figures are from before the refit) |")
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    lines += ["", f"Confusion matrix (rows true, columns predicted; negative, positive): [[{tn}, {fp}], [{fn}, {tp}]]", ""]
    lines += ["## Accuracy by review length", "", "| tokens | reviews | accuracy |", "| --- | --- | --- |"]
    lines += [f"| {b['bucket']} | {b['count']} | {fmt(b['accuracy'])} |" for b in m["length"]["buckets"]]
    lines += ["", f"{m['length']['truncated_share']:.1%} of reviews are longer than max_len={m['length']['max_len']} and were truncated.", ""]
    explained = m.get("explanations")
    if explained:
        lines += ["## What moves the model", "",
                  f"Summed occlusion weights (how far deleting a phrase moves the logit of P(positive)) over {explained['reviews']} reviews:", "",
                  "| towards positive | total (reviews) | towards negative | total (reviews) |", "| --- | --- | --- | --- |"]
        pos, neg = explained["strongest"]["positive"], explained["strongest"]["negative"]
        for i in range(max(len(pos), len(neg))):
            cell = lambda side: f"{side[i]['phrase']} | {side[i]['total_weight']:+.2f} ({side[i]['reviews']})" if i < len(side) else " | "  # noqa: E731
            lines.append(f"| {cell(pos)} | {cell(neg)} |")
        lines.append("")
    lines += ["## Most confident mistakes", ""]
    reasons = explained["mistakes"] if explained else [None] * len(m["confident_mistakes"])
    for x, why in zip(m["confident_mistakes"], reasons):
        lines.append(f"- true {x['label']}, P(positive)={x['probability']}: {x['text']!r}")
        if why:
            pushed = [f"{p} ({w:+.2f})" for side in ("positive", "negative") for p, w in why["why"][side]]
            lines.append(f"  - why: {', '.join(pushed) or 'no word moves it'}")
    if not m["confident_mistakes"]:
        lines.append("none")
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({PLOTS[name]})" for name in PLOTS if name in plots_present]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, title: str, report: dict, labels: np.ndarray, probs: np.ndarray, history: list[dict] | None = None) -> Path:
    """Write plots, ``report.md`` and ``metrics.json`` into ``out_dir``; return the report path.

    Plots an earlier report left in ``out_dir`` that this one does not draw are removed,
    so report.md never shows a stale figure.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = write_plots(out_dir, labels, probs, report, history)
    for name, file in PLOTS.items():
        if name not in drawn:
            (out_dir / file).unlink(missing_ok=True)
    artifacts.write_text(out_dir / "report.md", render_report(title, report, drawn))
    artifacts.write_json(out_dir / "metrics.json", report)  # last: in a run dir its presence marks the run finished
    log.info("report written to %s", out_dir / "report.md")
    return out_dir / "report.md"
