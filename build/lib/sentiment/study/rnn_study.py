"""Measuring the RNN → LSTM claim: gradient flow, synthetic probes over seeds, real reviews by length.

* Gradient flow: the norm of d loss / d (embedding output at step t), averaged over
  a batch of real reviews, against the distance from the last real token.
* Synthetic probes (``sentiment.study.probes``): first-token recall, recall against
  interference and the adding problem; every cell is the share of seeds that solve it,
  plus the same first-token cell under the project's own training recipe.
* Real reviews: accuracy by length bucket from the runs' per-review predictions, with
  95% bootstrap intervals, and each model's paired difference from the first run.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.config import Config
from sentiment.data import preprocessing
from sentiment.data.sources import Split
from sentiment.errors import ConfigError, ModelError
from sentiment.evaluation import metrics, report
from sentiment.rundir import RunDir
from sentiment.study import probes
from sentiment.study.probes import Reseed, reseed_if_given

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """What the study measures: gradient length, probe seeds, tasks and lengths, the recipe comparison's cell."""

    gradient_steps: int = 400
    seeds: tuple[int, ...] = (0, 1, 2)
    tasks: tuple[str, ...] = tuple(probes.TASKS)  # () measures real reviews alone
    max_length: int = 400  # probe lengths above this are skipped (for quick runs)
    recipe_task: str = "first_token"
    recipe_length: int = 100
    workers: int = 1  # processes training probe cells side by side


# ---------------------------------------------------------------------------
# Gradient flow


def forward_from_embeddings(model: keras.Model, embedded: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Run ``model`` from its embedding output onward (inference mode): [b, t, d] → P(positive) [b, 1]."""
    states = model.get_layer("recurrent")(embedded, mask=mask, training=False)
    names = {layer.name for layer in model.layers}
    # The readout as models.read_out builds it: the last state, or max and/or mean over the real steps.
    pooled = [model.get_layer(name)(states, mask=mask) for name in ("max_over_time", "mean_over_time") if name in names]
    x = model.get_layer("max_and_mean")(pooled) if len(pooled) == 2 else (pooled[0] if pooled else states)
    return model.get_layer("probability")(x)


def gradient_norms(model: keras.Model, token_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the batch mean of ||d loss / d embedding_t|| per step: ids int32 [b, T], no padding → float [T]."""
    ids = tf.constant(token_ids, tf.int32)
    embedded = model.get_layer("embedding")(ids)
    mask = tf.ones_like(ids, dtype=tf.bool)
    with tf.GradientTape() as tape:
        tape.watch(embedded)
        probs = forward_from_embeddings(model, embedded, mask)
        loss = keras.losses.binary_crossentropy(tf.constant(labels, tf.float32)[:, None], probs)
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, embedded)  # [b, T, d]
    return tf.reduce_mean(tf.norm(grads, axis=-1), axis=0).numpy()


@functools.lru_cache(maxsize=4)
def test_split(config: Config) -> Split:
    """Return a run's test reviews (loaded once per data and split settings)."""
    return preprocessing.load_clean_splits(dataclasses.replace(config, max_examples=0)).test


def review_batch(run: RunDir, config: Config, steps: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``size`` test reviews with at least ``steps`` tokens, cut to their first ``steps``: ids [size, steps]."""
    test = test_split(config)
    chosen = np.flatnonzero(preprocessing.token_lengths(test.texts) >= steps)[:size]
    if len(chosen) == 0:
        raise ModelError(f"no test review has {steps} tokens; lower --gradient-steps")
    # The run's own preprocessing, reading the head: the first ``steps`` tokens of each review.
    head = dataclasses.replace(config, truncate="head", max_len=steps)
    preprocessor = preprocessing.make_preprocessor(head, preprocessing.load_vocabulary(run.vocabulary))
    ids = preprocessor(tf.constant([test.texts[i] for i in chosen])).numpy()
    return ids.astype(np.int32), test.labels[chosen]


def gradient_flow(run_dirs: dict[str, Path], steps: int = 400, size: int = 64,
                  reseed: Reseed | None = None) -> dict[str, dict[str, list[float]]]:
    """Return per-model gradient norms per distance from the last token, untrained (built after ``reseed(run seed)``) and trained."""
    results = {}
    for name, run_dir in run_dirs.items():
        run = RunDir(run_dir)
        config = run.load_config()
        ids, labels = review_batch(run, config, steps, size)
        trained = models.load_model(run.checkpoint)
        reseed_if_given(reseed, config.seed)
        untrained = models.build_model(config)
        # Reverse so index k is the step k tokens before the last real token.
        results[name] = {
            "untrained": gradient_norms(untrained, ids, labels)[::-1].tolist(),
            "trained": gradient_norms(trained, ids, labels)[::-1].tolist(),
            "reviews": int(len(ids)),
        }
        log.info("gradient flow %s: %d reviews of %d tokens", name, len(ids), steps)
    return results


# ---------------------------------------------------------------------------
# Real reviews by length, with intervals


def run_predictions(run: RunDir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a finished run's test labels and P(positive) (from metrics.json) and each review's token length, aligned."""
    saved = artifacts.read_json(run.metrics).get("predictions")
    if not saved:
        raise ModelError(f"{run.metrics} has no per-review predictions; re-evaluate the run with evaluate.py")
    labels = np.asarray(saved["labels"], np.int32)
    test = test_split(run.load_config())
    if not np.array_equal(labels, test.labels):
        raise ModelError(f"{run.metrics} does not hold the predictions of {run}'s test split; re-evaluate the run")
    return labels, np.asarray(saved["probabilities"], np.float32), preprocessing.token_lengths(test.texts)


def named_masks(lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Return the length buckets' masks and one for all reviews."""
    return {**metrics.length_bucket_masks(lengths), "all": np.ones(len(lengths), bool)}


def bucket_accuracy(labels: np.ndarray, probs: np.ndarray, lengths: np.ndarray) -> list[dict]:
    """Return accuracy with its 95% bootstrap interval per length bucket and over all reviews."""
    rows = []
    for name, mask in named_masks(lengths).items():
        right = (probs[mask] >= 0.5) == labels[mask]
        rows.append({"bucket": name, "count": int(mask.sum()), "accuracy": float(right.mean()) if mask.any() else None,
                     "ci95": metrics.accuracy_interval(labels[mask], probs[mask])})
    return rows


def paired_buckets(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, lengths: np.ndarray) -> list[dict]:
    """Return, per length bucket and overall, B minus A in accuracy with its interval and McNemar's exact p."""
    right_a, right_b = (probs_a >= 0.5) == labels, (probs_b >= 0.5) == labels
    return [{"bucket": name, "count": int(mask.sum()), **metrics.paired_difference(right_a[mask], right_b[mask]),
             "mcnemar_p": metrics.mcnemar_test(labels[mask], probs_a[mask], probs_b[mask])["p_value"]}
            for name, mask in named_masks(lengths).items()]


def length_comparison(run_dirs: dict[str, Path]) -> dict:
    """Return accuracy by length per run, and every later run's paired difference from the first on the same test reviews."""
    loaded = {name: run_predictions(RunDir(d)) for name, d in run_dirs.items()}
    reference, (ref_labels, ref_probs, ref_lengths) = next(iter(loaded.items()))
    paired = {}
    for name, (labels, probs, _) in list(loaded.items())[1:]:
        if np.array_equal(labels, ref_labels) and len(probs) == len(ref_probs):
            paired[name] = paired_buckets(labels, ref_probs, probs, ref_lengths)
        else:  # a different split: only unpaired intervals apply
            log.warning("%s was tested on other reviews than %s: no paired comparison", name, reference)
    return {"reference": reference, "runs": {name: bucket_accuracy(*v) for name, v in loaded.items()}, "paired": paired}


# ---------------------------------------------------------------------------
# Probes: grids over seeds and the recipe comparison


def task_lengths(task: str, max_length: int) -> tuple[int, ...]:
    """Return the task's lengths up to ``max_length`` (at least its shortest)."""
    lengths = probes.TASKS[task].lengths
    return tuple(n for n in lengths if n <= max_length) or lengths[:1]


def measure_probes(settings: StudySettings, reseed: Reseed | None) -> tuple[dict[str, dict], dict[str, dict]]:
    """Return every probe task's grid (probe recipe) and the comparison cell under every recipe, run as one batch of cells."""
    tasks = [probes.Grid(task, task_lengths(task, settings.max_length), settings.seeds) for task in settings.tasks]
    length = min(settings.recipe_length, settings.max_length)
    recipes = [probes.Grid(settings.recipe_task, (length,), settings.seeds, recipe) for recipe in probes.RECIPES]
    results = probes.run_grids(tasks + recipes, reseed, settings.workers)
    compared = {g.recipe: {**r, "describe_recipe": probes.RECIPES[g.recipe].describe} for g, r in zip(recipes, results[len(tasks):])}
    return dict(zip(settings.tasks, results[: len(tasks)])), compared


def reach(cells: list[dict]) -> int:
    """Return the longest length every seed solved (0 if none)."""
    return max((c["length"] for c in cells if all(c["solved"])), default=0)


def favoured(grid: dict) -> list[str]:
    """Return the model(s) solving the most (length, seed) runs: the cells the task favours."""
    totals = {name: sum(sum(c["solved"]) for c in cells) for name, cells in grid["cells"].items()}
    return [name for name, total in totals.items() if total == max(totals.values())]


# ---------------------------------------------------------------------------
# Plots


def plot_gradient_flow(flow: dict, path: Path) -> None:
    """Gradient norm vs distance from the last real token, log scale, per model, untrained and trained."""
    plt = report.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, stage in zip(axes, ("untrained", "trained")):
        for name, values in flow.items():
            ax.plot(np.arange(len(values[stage])), values[stage], label=name)
        ax.set(yscale="log", xlabel="tokens before the last real token", title=f"{stage}: ||d loss / d embedding_t||")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    axes[0].set_ylabel("mean gradient norm (log)")
    report.save_figure(fig, path)


def plot_probes(grids: dict[str, dict], path: Path) -> None:
    """Per task: seed share solved vs length (top) and every seed's test score (bottom), one line per model."""
    plt = report.pyplot()
    fig, axes = plt.subplots(2, len(grids), figsize=(5 * len(grids), 8), squeeze=False)
    for col, (task, grid) in enumerate(grids.items()):
        top, bottom = axes[0][col], axes[1][col]
        for i, (name, cells) in enumerate(grid["cells"].items()):
            color, shift = f"C{i}", 1 + 0.03 * (i - 1.5)  # side by side, so equal shares stay visible
            top.plot([c["length"] * shift for c in cells], [probes.solved_share(c) for c in cells], "o-", color=color, label=name)
            bottom.plot([c["length"] for c in cells], [float(np.median(c["score"])) for c in cells], "-", color=color, label=name)
            for c in cells:
                bottom.scatter([c["length"] * shift] * len(c["score"]), c["score"], color=color, s=12)
        top.set(title=f"{task}: share of {len(grid['seeds'])} seeds solved", ylabel=f"solved ({grid['rule']})", ylim=(-0.05, 1.05))
        bottom.axhline(grid["trivial"], color="gray", linestyle=":", label="input ignored")
        if grid["metric"] == "MSE":
            bottom.axhline(probes.SOLVED_MSE, color="gray", linestyle="--", label="solved below")
            bottom.set(yscale="log")
        bottom.set(ylabel=f"test {grid['metric']} (dots: seeds, line: median)")
        for ax in (top, bottom):
            ax.set(xscale="log", xlabel="sequence length N (steps after the signal)")
            ax.set_xticks(grid["lengths"], [str(n) for n in grid["lengths"]])
            ax.minorticks_off()  # log-scale minor labels (2×10^1 ...) would crowd the measured lengths
            ax.grid(alpha=0.3)
        bottom.legend(fontsize=8)
    report.save_figure(fig, path)


def plot_recipes(recipes: dict[str, dict], path: Path) -> None:
    """Grouped bars: mean test accuracy over seeds per model, one bar per training recipe."""
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    grid = next(iter(recipes.values()))
    names = list(grid["cells"])
    series = {recipe: [float(np.mean(g["cells"][m][0]["score"])) for m in names] for recipe, g in recipes.items()}
    report.plot_grouped_bars(ax, names, series)
    ax.axhline(probes.SOLVED_ACCURACY, color="gray", linestyle="--")
    ax.set(ylabel=f"mean test {grid['metric']} over {len(grid['seeds'])} seeds",
           title=f"{grid['task']}, N={grid['lengths'][0]}: the same cell under {len(recipes)} training recipes")
    report.save_figure(fig, path)


def plot_length_comparison(comparison: dict, path: Path) -> None:
    """Left: accuracy per length bucket per model with 95% intervals; right: paired differences from the reference."""
    plt = report.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    runs = comparison["runs"]
    groups = [b["bucket"] for b in next(iter(runs.values()))]
    width = 0.8 / len(runs)
    for i, (name, rows) in enumerate(runs.items()):
        x = np.arange(len(groups)) + i * width
        acc = np.array([r["accuracy"] or np.nan for r in rows])
        err = np.abs(np.array([r["ci95"] for r in rows]).T - acc)
        left.errorbar(x, acc, yerr=err, fmt="o", capsize=3, label=name)
    left.set_xticks(np.arange(len(groups)) + width * (len(runs) - 1) / 2, groups)
    left.set(xlabel="review length (tokens)", ylabel="test accuracy (95% bootstrap interval)", title="real reviews: accuracy by length")
    left.legend(fontsize=8)
    for i, (name, rows) in enumerate(comparison["paired"].items()):
        x = np.arange(len(groups)) + i * 0.15
        diff = np.array([r["difference"] if r["difference"] is not None else np.nan for r in rows])
        right.errorbar(x, diff, yerr=np.abs(np.array([r["ci95"] for r in rows]).T - diff), fmt="o", capsize=3, label=name)
    right.axhline(0, color="gray", linestyle=":")
    right.set_xticks(np.arange(len(groups)), groups)
    right.set(xlabel="review length (tokens)", ylabel=f"accuracy minus {comparison['reference']}'s (95% paired bootstrap)",
              title=f"paired differences from {comparison['reference']}")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    report.save_figure(fig, path)


# ---------------------------------------------------------------------------
# study.md


def ratio(values: list[float], near: int, far: int) -> float:
    """Return gradient norm at distance ``far`` over the norm at distance ``near``."""
    return float(values[far] / values[near]) if values[near] else float("nan")


def fmt_score(value: float, metric: str) -> str:
    """Format an accuracy (3 decimals) or an MSE (3 significant digits)."""
    return f"{value:.3f}" if metric == "accuracy" else f"{value:.3g}"


def fmt_interval(value: float | None, ci: list[float], signed: bool = False) -> str:
    """Format a value with its interval, e.g. 0.853 (0.808 to 0.896); n/a for an empty bucket."""
    if value is None:
        return "n/a"
    spec = "+.3f" if signed else ".3f"
    return f"{value:{spec}} ({ci[0]:{spec}} to {ci[1]:{spec}})"


def fmt_cell(cell: dict, metric: str) -> str:
    """Format one cell: seeds solved / seeds, then the median test score."""
    return f"{sum(cell['solved'])}/{len(cell['solved'])} ({fmt_score(float(np.median(cell['score'])), metric)})"


def render_grid(grid: dict) -> list[str]:
    """Return one probe task's table: a row per model, a cell per length, plus median steps to solve."""
    lengths = grid["lengths"]
    lines = [f"Task: {grid['describe']}. Solved: {grid['rule']} (input ignored: {fmt_score(grid['trivial'], grid['metric'])}); "
             f"step budget {grid['budget']} batches of 64.", "",
             "| model | " + " | ".join(f"N={n}" for n in lengths) + " | median steps per cell | seconds |",
             "|" + " --- |" * (len(lengths) + 3)]
    for name, cells in grid["cells"].items():
        steps = " / ".join(str(int(np.median(c["steps"]))) for c in cells)
        seconds = round(sum(sum(c["seconds"]) for c in cells))
        lines.append(f"| {name} | " + " | ".join(fmt_cell(c, grid["metric"]) for c in cells) + f" | {steps} | {seconds} |")
    return lines


def render_conclusion(grids: dict[str, dict]) -> list[str]:
    """Return the per-task verdict: what the task demands, which cells it favours, how far each model reaches."""
    names = list(next(iter(grids.values()))["cells"])
    lines = ["Longest N solved by every seed, per model, and the model(s) with the most seed-solved cells:", "",
             "| task | what the state must do | favoured | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 3)]
    for task, grid in grids.items():
        reaches = [str(reach(grid["cells"][n]) or "none") for n in names]
        lines.append(f"| {task} | {probes.TASKS[task].demands} | {', '.join(favoured(grid))} | " + " | ".join(reaches) + " |")
    return lines


def render_recipes(recipes: dict[str, dict]) -> list[str]:
    """Return the recipe comparison: one row per model, one column per recipe, and each recipe's description."""
    grid = next(iter(recipes.values()))
    lines = [f"The {grid['task']} cell at N={grid['lengths'][0]}, {len(grid['seeds'])} seeds per recipe "
             "(seeds solved / seeds, median test accuracy; median steps):", "",
             "| model | " + " | ".join(recipes) + " |", "|" + " --- |" * (len(recipes) + 1)]
    for name in grid["cells"]:
        cells = [g["cells"][name][0] for g in recipes.values()]
        lines.append(f"| {name} | " + " | ".join(f"{fmt_cell(c, 'accuracy')}; {int(np.median(c['steps']))}" for c in cells) + " |")
    lines += [""] + [f"* `{recipe}`: {g['describe_recipe']}." for recipe, g in recipes.items()]
    return lines


def render_lengths(comparison: dict) -> list[str]:
    """Return the real-review table: accuracy with intervals per model, and paired differences with McNemar p."""
    runs, paired = comparison["runs"], comparison["paired"]
    lines = ["| tokens | reviews | " + " | ".join(runs) + " | "
             + " | ".join(f"{n} − {comparison['reference']} (paired; McNemar p)" for n in paired) + " |",
             "|" + " --- |" * (len(runs) + len(paired) + 2)]
    first = next(iter(runs.values()))
    for i, row in enumerate(first):
        acc = [fmt_interval(r[i]["accuracy"], r[i]["ci95"]) for r in runs.values()]
        diff = [f"{fmt_interval(p[i]['difference'], p[i]['ci95'], signed=True)}; p = {p[i]['mcnemar_p']:.2g}" for p in paired.values()]
        lines.append(f"| {row['bucket']} | {row['count']} | " + " | ".join(acc + diff) + " |")
    return lines


def render_study(study: dict) -> str:
    """Return study.md from study.json's content: conclusion, probe tables, recipes, gradient flow, real reviews."""
    flow, grids, far = study["gradient_flow"], study["probes"], study["gradient_far"]
    seconds = study["seconds"]["total"]
    took = f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds:.0f} seconds"
    lines = ["# SimpleRNN vs LSTM: what holds, measured", "",
             f"Generated by `study.py` from `study.json` (the whole study took {took} on this machine). "
             + (f"Synthetic cells: the share of {len(study['seeds'])} seeds (seeds {', '.join(map(str, study['seeds']))}) "
                "whose model solves the task on fresh test sequences (1,024), median test score in brackets." if grids else
                "Real reviews alone (`--tasks none`): no synthetic probes."), ""]
    if grids:  # a study of real reviews alone (study.py --tasks none) has no synthetic part
        lines += ["## Conclusion", ""] + render_conclusion(grids) + [""]
        lines += ["## Synthetic probes", "", "![probes](probes.png)", "", f"Recipe (`probe`): {probes.RECIPES['probe'].describe}.", ""]
        for task, grid in grids.items():
            lines += [f"### {task}", ""] + render_grid(grid) + [""]
        lines += ["## How much the training recipe decides", "", "![recipes](recipes.png)", ""] + render_recipes(study["recipes"]) + [""]
    lines += ["## Gradient flow on real reviews", "", "![gradient flow](gradient_flow.png)", "",
              f"Ratio of the gradient norm {far} tokens before the end to the norm at the last token (1 = no decay):", "",
              "| model | untrained | trained |", "| --- | --- | --- |"]
    for name, v in flow.items():
        lines.append(f"| {name} | {ratio(v['untrained'], 0, far):.3g} | {ratio(v['trained'], 0, far):.3g} |")
    lines += ["", "## Real reviews by length", "", "![length buckets](length_buckets.png)", "",
              "Test accuracy with 95% bootstrap intervals over the bucket's reviews (2,000 resamples), and each model's "
              "difference from the first on the same reviews (paired bootstrap interval; McNemar's exact test):", ""]
    lines += render_lengths(study["length_buckets"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# The whole study


def timed(seconds: dict[str, float], key: str, started: float) -> float:
    """Record the seconds since ``started`` under ``key``; return the current time."""
    now = time.perf_counter()
    seconds[key] = round(now - started, 1)
    return now


def run_study(run_dirs: dict[str, Path], out_dir: Path, settings: StudySettings = StudySettings(),
              reseed: Reseed | None = None) -> Path:
    """Measure everything, write plots, study.json and study.md into ``out_dir``; return study.md."""
    for run_dir in run_dirs.values():
        RunDir(run_dir).require_finished()
        config = RunDir(run_dir).load_config()
        if config.ngram_vocab_size:  # the n-gram-only model too: its config requires n-grams
            # Gradients are followed from the embedding through the recurrent layer alone: an n-gram branch would bypass it.
            raise ConfigError(f"{run_dir} holds a {config.model} run; the study compares recurrent-only models (no n-gram branch)")
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    start = clock = time.perf_counter()
    lengths = length_comparison(run_dirs)  # first: a run without usable predictions fails in seconds, not after the probes
    clock = timed(seconds, "length_buckets", clock)
    flow = gradient_flow(run_dirs, settings.gradient_steps, reseed=reseed)
    clock = timed(seconds, "gradient_flow", clock)
    grids, recipes = measure_probes(settings, reseed) if settings.tasks else ({}, {})
    timed(seconds, "probes", clock)
    timed(seconds, "total", start)
    study = {"settings": dataclasses.asdict(settings), "seeds": list(settings.seeds), "seconds": seconds,
             "gradient_flow": flow, "gradient_far": min(settings.gradient_steps - 1, 100), "probes": grids, "recipes": recipes,
             "length_buckets": lengths, "runs": {k: str(v) for k, v in run_dirs.items()}}
    artifacts.write_json(out_dir / "study.json", study)
    return render_saved_study(out_dir)  # figures and text from what study.json holds, nothing else


def render_saved_study(out_dir: Path) -> Path:
    """Redraw the figures and study.md from an earlier run's study.json in ``out_dir``; return study.md."""
    study = artifacts.read_json(out_dir / "study.json")
    write_figures(study, out_dir)
    artifacts.write_text(out_dir / "study.md", render_study(study))
    return out_dir / "study.md"


def write_figures(study: dict, out_dir: Path) -> None:
    """Draw every figure of study.md from study.json's content."""
    plot_gradient_flow(study["gradient_flow"], out_dir / "gradient_flow.png")
    if study["probes"]:
        plot_probes(study["probes"], out_dir / "probes.png")
        plot_recipes(study["recipes"], out_dir / "recipes.png")
    plot_length_comparison(study["length_buckets"], out_dir / "length_buckets.png")
