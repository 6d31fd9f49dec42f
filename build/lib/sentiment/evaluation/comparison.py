"""Side-by-side comparison of finished runs, always against the cheap anchors (TF-IDF + LR, NBSVM-bi) on the same reviews."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sentiment import artifacts
from sentiment.config import Config
from sentiment.errors import ConfigError, ModelError
from sentiment.evaluation import baseline, metrics, report
from sentiment.evaluation.anchors import ANCHORS
from sentiment.rundir import RunDir, read_history

log = logging.getLogger(__name__)

# Settings that decide the data split; runs compared on one table must share them.
SPLIT_FIELDS = ("data", "data_seed", "val_fraction", "test_fraction", "max_examples")  # data_seed: Config.data_seed()


def load_run(run_dir: Path) -> tuple[Config, dict, list[dict]]:
    """Return a finished run's config, metrics and history, or raise ModelError."""
    run = RunDir(run_dir)
    run.require_finished()
    return run.load_config(), artifacts.read_json(run.metrics), read_history(run)


def check_same_split(configs: list[Config]) -> None:
    """Raise ModelError if the runs were not evaluated on the same data split."""
    for field in SPLIT_FIELDS:
        values = {c.data_seed() if field == "data_seed" else getattr(c, field) for c in configs}
        if len(values) > 1:
            raise ModelError(f"runs differ in {field} ({', '.join(map(str, values))}); they were not tested on the same split")


def table_row(name: str, m: dict) -> dict:
    """Flatten one model's report into a comparison table row."""
    t = m.get("training", {})
    low, high = m.get("accuracy_ci95") or (None, None)
    row = {
        "model": name,
        "accuracy": m["accuracy"],
        "accuracy_ci95": f"{low:.3f}–{high:.3f}" if low is not None else None,
        "f1": m["f1"],
        "roc_auc": m["roc_auc"],
        "ece": m["ece"],
        "val_accuracy": (m.get("validation") or {}).get("accuracy"),
        "train_time_s": t.get("wall_seconds"),
        "epochs": t.get("epochs"),
        "tokens_per_second": t.get("tokens_per_second"),
        "parameters": m.get("parameters"),
    }
    row.update({f"acc_{b['bucket']}": b["accuracy"] for b in m["length"]["buckets"]})
    return row


def run_label(run_dir: Path, config: Config, configs: list[Config]) -> str:
    """Return a run's row name: its model, and when two runs share it, its run dir's name less a ``-s<seed>`` suffix (so seeds summarize together)."""
    if [c.model for c in configs].count(config.model) == 1:
        return config.model
    return f"{config.model} ({run_dir.name.removesuffix(f'-s{config.seed}')})"


def paired_test(m: dict, anchor: dict) -> dict | None:
    """McNemar's exact test of a run against an anchor on the same test reviews (None if a report lacks predictions)."""
    mine, theirs = m.get("predictions"), anchor.get("predictions")
    if not mine or not theirs or mine["labels"] != theirs["labels"]:
        return None
    labels = np.asarray(mine["labels"])
    test = metrics.mcnemar_test(labels, np.asarray(mine["probabilities"]), np.asarray(theirs["probabilities"]))
    return {"anchor": anchor["model"], "only_model_right": test["a_only"], "only_anchor_right": test["b_only"], "mcnemar_p": test["p_value"]}


def beats(pair: dict) -> bool:
    """Return True if a paired test shows the model more accurate than the anchor with p < 0.05."""
    return pair["mcnemar_p"] < 0.05 and pair["only_model_right"] > pair["only_anchor_right"]


def format_cell(key: str, value: object) -> str:
    """Format a table cell: 4 decimals for scores, whole numbers for counts, times and rates."""
    if value is None:
        return ""
    if isinstance(value, dict):  # a paired test: only the model right / only the anchor right, p
        return f"{value['only_model_right']} / {value['only_anchor_right']}, p={value['mcnemar_p']:.2g}"
    if key == "mcnemar_p" and isinstance(value, float):
        return f"{value:.2g}"
    if isinstance(value, float) and not key.endswith(("_s", "_second")):
        return f"{value:.4f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


def render_table(rows: list[dict]) -> str:
    """Render rows as a Markdown table."""
    keys = list(dict.fromkeys(k for r in rows for k in r))  # every column any row has, in first-seen order
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(format_cell(k, r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot_comparison(rows: list[dict], histories: dict[str, list[dict]], path: Path) -> None:
    """Three panels: test accuracy, accuracy by length bucket, validation accuracy per epoch."""
    plt = report.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    names = [r["model"] for r in rows]
    bars = axes[0].bar(names, [r["accuracy"] for r in rows], color="tab:blue")
    axes[0].bar_label(bars, fmt="%.3f", fontsize=8)
    low = min(r["accuracy"] for r in rows)
    axes[0].set(title="test accuracy", ylim=(max(0.0, low - 0.05), 1.0))
    axes[0].tick_params(axis="x", rotation=20)
    buckets = [k for k in rows[0] if k.startswith("acc_")]
    report.plot_grouped_bars(axes[1], [k[4:] for k in buckets], {r["model"]: [r[k] for k in buckets] for r in rows})
    axes[1].set(title="test accuracy by review length (tokens)")
    for name, history in histories.items():
        axes[2].plot(range(1, len(history) + 1), [h.get("val_accuracy") for h in history], "o-", label=name)
    axes[2].set(title="validation accuracy per epoch", xlabel="epoch")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    report.save_figure(fig, path)


def compare(run_dirs: list[Path], out_dir: Path, with_baseline: bool = True) -> Path:
    """Write comparison.md, comparison.json and comparison.png for ``run_dirs`` (+ the anchors); return the .md."""
    runs = [load_run(Path(d)) for d in run_dirs]
    configs = [c for c, _, _ in runs]
    check_same_split(configs)
    labels = [run_label(Path(d), c, configs) for d, c in zip(run_dirs, configs)]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"two runs would share a row name ({', '.join(labels)}): give their run directories distinct names")
    rows = [table_row(label, m) for label, (_, m, _) in zip(labels, runs)]
    histories = {row["model"]: h for row, (_, _, h) in zip(rows, runs)}
    for row, (_, m, _) in zip(rows[1:], runs[1:]):  # ablations: each run against the first one listed
        pair = paired_test(m, {**runs[0][1], "model": rows[0]["model"]})
        if pair:
            row["vs_first"] = pair
    if with_baseline:
        # Anchors per kind of training data: a --refit run is paired with anchors fit on train + validation.
        fitted = {(name, refit): baseline.run_baseline(configs[0], refit, name)
                  for refit in sorted({c.refit for c in configs}) for name in ANCHORS}
        for row, (config, m, _) in zip(rows, runs):
            for name in ANCHORS:
                pair = paired_test(m, fitted[name, config.refit])
                if pair:
                    row[f"vs_{name}"] = pair
        rows += [table_row(anchor["model"], anchor) for anchor in fitted.values()]
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_comparison(rows, histories, out_dir / "comparison.png")
    artifacts.write_json(out_dir / "comparison.json", {"runs": [str(d) for d in run_dirs], "seed": configs[0].data_seed(),
                                                          "training_seeds": sorted({c.seed for c in configs}), "rows": rows})
    text = "\n".join([
        "# Model comparison", "",
        f"Test split of `{configs[0].data}` (split seed {configs[0].data_seed()}); every model saw the same train/validation/test reviews.",
        "Length buckets count tokens after standardization. `accuracy_ci95`: 95% bootstrap interval over test reviews.",
        "Each model is paired with each anchor trained on the same reviews (TF-IDF + LR, NBSVM-bi; `_refit`: on train +",
        "validation, like a `--refit` model). A `vs_` cell reads: test reviews only the model gets right / only the anchor",
        "gets right, and McNemar's exact p of that difference (p < 0.05: unlikely to be the test split's noise);",
        "`vs_first` pairs each run with the first one listed the same way (ablations).", "",
        render_table(rows), "", "![comparison](comparison.png)", "",
    ])
    artifacts.write_text(out_dir / "comparison.md", text)
    log.info("comparison written to %s", out_dir / "comparison.md")
    return out_dir / "comparison.md"


SUMMARY_KEYS = ("accuracy", "f1", "roc_auc", "val_accuracy", "train_time_s")


def summarize(comparison_dirs: list[Path], out_dir: Path) -> Path:
    """Write summary.md/.json: each model's mean ± std over comparisons (one per seed, each on its own split)."""
    tables = [artifacts.read_json(Path(d) / "comparison.json") for d in comparison_dirs]
    # A comparison is one (split seed, training seeds) pair: several training seeds on one split are distinct comparisons.
    seeds = [(t.get("seed"), tuple(t.get("training_seeds") or [t.get("seed")])) for t in tables]
    if None not in [s for s, _ in seeds] and len(set(seeds)) < len(seeds):
        raise ModelError(f"comparisons share a seed ({', '.join(str(s) for s, _ in seeds)}); summarize one comparison per seed")
    names = list(dict.fromkeys(row["model"] for table in tables for row in table["rows"]))
    summary = [summarize_model(name, [row for table in tables for row in table["rows"] if row["model"] == name]) for name in names]
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(out_dir / "summary.json", {"comparisons": [str(d) for d in comparison_dirs], "rows": summary})
    table = [{"model": row["model"], "runs": row["runs"], **{k: format_spread(k, row.get(k)) for k in SUMMARY_KEYS},
              **{f"beats_{a}": row.get(f"beats_{a}", "") for a in ANCHORS}} for row in summary]
    text = "\n".join([
        "# Results over seeds", "",
        f"Mean ± standard deviation over {len(tables)} comparisons (one per seed: it sets initialization and shuffling, and",
        "the split unless a split seed fixes it; each comparison's anchors are trained on its split's training reviews). `beats_<anchor>`: comparisons in which the model",
        "is more accurate than that anchor with McNemar p < 0.05, out of those with a paired test.", "",
        render_table(table), "",
    ])
    artifacts.write_text(out_dir / "summary.md", text)
    log.info("summary written to %s", out_dir / "summary.md")
    return out_dir / "summary.md"


def format_spread(key: str, stats: dict | None) -> str:
    """Format ``mean ± std`` (just the mean for a single run; seconds as whole numbers)."""
    if not stats:
        return ""
    digits = 0 if key.endswith("_s") else 4
    return f"{stats['mean']:.{digits}f}" + (f" ± {stats['std']:.{digits}f}" if stats["std"] is not None else "")


def summarize_model(name: str, rows: list[dict]) -> dict:
    """Return the mean and sample standard deviation of each summary figure over one model's rows."""
    result: dict = {"model": name, "runs": len(rows)}
    for key in SUMMARY_KEYS:
        values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
        if len(values):
            result[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None}
    for anchor in ANCHORS:
        paired = [r[f"vs_{anchor}"] for r in rows if r.get(f"vs_{anchor}")]
        if paired:
            result[f"beats_{anchor}"] = f"{sum(map(beats, paired))}/{len(paired)}"
    return result
