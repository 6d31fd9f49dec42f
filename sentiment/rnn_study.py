"""Measuring the RNN → LSTM claim: gradient flow over time and a long-range memory probe.

* Gradient flow: the norm of d loss / d (embedding output at step t), averaged over
  a batch of real reviews, against the distance from the last real token.
* Long-range probe: a generated task whose label is a signal token at the start,
  followed by N distractors; accuracy vs N for the registry's recurrent models.
* Real reviews: accuracy by length bucket, read from the runs' evaluation reports.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, models, preprocessing, report
from sentiment.config import Config
from sentiment.errors import ModelError
from sentiment.models import make_config
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)

PROBE_DISTANCES = (10, 50, 100, 200, 400)
PROBE_MODELS = ("simple_rnn", "lstm", "lstm_chrono", "gru")
SIGNAL_TOKENS = (2, 3)  # negative, positive; 0 is padding, 1 out-of-vocabulary

# Seeds the process-wide random state (e.g. training.seed_everything). The entry point passes
# it in, so each measurement starts from its own seed; without it nothing here seeds.
Reseed = Callable[[int], None]


def reseed_if_given(reseed: Reseed | None, seed: int) -> None:
    """Call ``reseed(seed)`` when the caller gave a seeding function."""
    if reseed is not None:
        reseed(seed)


# ---------------------------------------------------------------------------
# Gradient flow


def forward_from_embeddings(model: keras.Model, embedded: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Run ``model`` from its embedding output onward (inference mode): [b, t, d] → P(positive) [b, 1]."""
    x = model.get_layer("recurrent")(embedded, mask=mask, training=False)
    if any(layer.name == "mean_over_time" for layer in model.layers):
        x = model.get_layer("mean_over_time")(x, mask=mask)
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


def review_batch(run: RunDir, config: Config, steps: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``size`` test reviews with at least ``steps`` tokens, cut to their first ``steps``: ids [size, steps]."""
    splits = preprocessing.load_clean_splits(dataclasses.replace(config, max_examples=0))
    lengths = preprocessing.token_lengths(splits.test.texts)
    chosen = np.flatnonzero(lengths >= steps)[:size]
    if len(chosen) == 0:
        raise ModelError(f"no test review has {steps} tokens; lower --gradient-steps")
    # The run's own preprocessing, reading the head: the first ``steps`` tokens of each review.
    head = dataclasses.replace(config, truncate="head", max_len=steps)
    preprocessor = preprocessing.make_preprocessor(head, preprocessing.load_vocabulary(run.vocabulary))
    ids = preprocessor(tf.constant([splits.test.texts[i] for i in chosen])).numpy()
    return ids.astype(np.int32), splits.test.labels[chosen]


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
# Long-range probe


def make_probe_data(n: int, distance: int, vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` sequences: a signal token (the label) then ``distance`` random distractors: ids [n, distance+1]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    distractors = rng.integers(max(SIGNAL_TOKENS) + 1, vocab_size, size=(n, distance))
    signal = np.asarray(SIGNAL_TOKENS)[labels][:, None]
    return np.concatenate([signal, distractors], axis=1).astype(np.int32), labels.astype(np.float32)


def probe_config(model: str, distance: int, seed: int) -> Config:
    """Return the small config the probe trains with: the project's builders, last-state readout."""
    return make_config(
        model, vocab_size=64, max_len=distance + 1, embedding_dim=16, units=32, readout="last", embedding_dropout=0.0, dropout=0.0,
        learning_rate=3e-3, clipnorm=1.0, batch_size=64, seed=seed,
    )


def run_probe_once(model_name: str, distance: int, seed: int = 0, n_train: int = 2048, n_test: int = 512, epochs: int = 8,
                   reseed: Reseed | None = None) -> float:
    """Train one model on the probe at one distance (after ``reseed(seed)``); return its test accuracy."""
    config = probe_config(model_name, distance, seed)
    reseed_if_given(reseed, seed)
    x, y = make_probe_data(n_train + n_test, distance, config.vocab_size, seed)
    model = models.compile_model(models.build_model(config), config)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=2, baseline=None, restore_best_weights=True)
    model.fit(x[:n_train], y[:n_train], validation_split=0.1, epochs=epochs, batch_size=config.batch_size, verbose=0, callbacks=[stop])
    probs = model.predict(x[n_train:], verbose=0, batch_size=256).reshape(-1)
    return float(((probs >= 0.5) == y[n_train:]).mean())


def long_range_probe(distances: tuple[int, ...] = PROBE_DISTANCES, model_names: tuple[str, ...] = PROBE_MODELS,
                     seed: int = 0, epochs: int = 8, reseed: Reseed | None = None) -> dict:
    """Return test accuracy per model per distance on the signal-then-distractors task."""
    results: dict = {"distances": list(distances), "accuracy": {}, "seconds": {}}
    for name in model_names:
        started = time.perf_counter()
        results["accuracy"][name] = [run_probe_once(name, d, seed, epochs=epochs, reseed=reseed) for d in distances]
        results["seconds"][name] = round(time.perf_counter() - started, 1)
        log.info("probe %s: %s", name, dict(zip(distances, results["accuracy"][name])))
    return results


# ---------------------------------------------------------------------------
# Plots and study.md


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


def plot_probe(probe: dict, path: Path) -> None:
    """Accuracy vs number of distractors per model."""
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, accs in probe["accuracy"].items():
        ax.plot(probe["distances"], accs, "o-", label=name)
    ax.axhline(0.5, color="gray", linestyle=":", label="chance")
    ax.set(xscale="log", xlabel="distractor tokens between signal and end", ylabel="test accuracy", ylim=(0.4, 1.02),
           title="long-range probe: remember the first token")
    ax.set_xticks(probe["distances"], [str(d) for d in probe["distances"]])
    ax.grid(alpha=0.3)
    ax.legend()
    report.save_figure(fig, path)


def plot_length_comparison(buckets: dict[str, list[dict]], path: Path) -> None:
    """Grouped bars: test accuracy per length bucket per model."""
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = [b["bucket"] for b in next(iter(buckets.values()))]
    report.plot_grouped_bars(ax, groups, {name: [b["accuracy"] for b in bs] for name, bs in buckets.items()})
    ax.set(xlabel="review length (tokens)", ylabel="test accuracy", title="real reviews: accuracy by length")
    report.save_figure(fig, path)


def ratio(values: list[float], near: int, far: int) -> float:
    """Return gradient norm at distance ``far`` over the norm at distance ``near``."""
    return float(values[far] / values[near]) if values[near] else float("nan")


def fmt(value: float | None) -> str:
    """Format an accuracy, or n/a for an empty bucket."""
    return "n/a" if value is None else f"{value:.3f}"


def render_study(flow: dict, probe: dict, buckets: dict[str, list[dict]], far: int) -> str:
    """Return study.md with the measured figures."""
    lines = ["# SimpleRNN vs LSTM: vanishing gradients and long-range dependencies", ""]
    lines += ["## Gradient flow on real reviews", "", "![gradient flow](gradient_flow.png)", ""]
    lines += [f"Ratio of the gradient norm {far} tokens before the end to the norm at the last token (1 = no decay):", ""]
    lines += ["| model | untrained | trained |", "| --- | --- | --- |"]
    for name, v in flow.items():
        lines.append(f"| {name} | {ratio(v['untrained'], 0, far):.3g} | {ratio(v['trained'], 0, far):.3g} |")
    lines += ["", "## Long-range probe (synthetic)", "", "![probe](long_range_probe.png)", ""]
    lines += ["| model | " + " | ".join(f"N={d}" for d in probe["distances"]) + " | seconds |", "|" + " --- |" * (len(probe["distances"]) + 2)]
    for name, accs in probe["accuracy"].items():
        lines.append(f"| {name} | " + " | ".join(f"{a:.3f}" for a in accs) + f" | {probe['seconds'][name]} |")
    lines += ["", "## Real reviews by length", "", "![length buckets](length_buckets.png)", ""]
    names = list(buckets)
    lines += ["| tokens | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for i, b in enumerate(buckets[names[0]]):
        cells = [f"{fmt(buckets[n][i]['accuracy'])} (n={buckets[n][i]['count']})" for n in names]
        lines.append(f"| {b['bucket']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_study(run_dirs: dict[str, Path], out_dir: Path, gradient_steps: int = 400, probe_epochs: int = 8,
              distances: tuple[int, ...] = PROBE_DISTANCES, seed: int = 0, reseed: Reseed | None = None) -> Path:
    """Measure everything, write plots, study.json and study.md into ``out_dir``; return study.md."""
    for run_dir in run_dirs.values():
        RunDir(run_dir).require_finished()
    out_dir.mkdir(parents=True, exist_ok=True)
    flow = gradient_flow(run_dirs, gradient_steps, reseed=reseed)
    probe = long_range_probe(distances, seed=seed, epochs=probe_epochs, reseed=reseed)
    buckets = {name: artifacts.read_json(RunDir(d).metrics)["length"]["buckets"] for name, d in run_dirs.items()}
    plot_gradient_flow(flow, out_dir / "gradient_flow.png")
    plot_probe(probe, out_dir / "long_range_probe.png")
    plot_length_comparison(buckets, out_dir / "length_buckets.png")
    far = min(gradient_steps - 1, 100)
    artifacts.write_json(out_dir / "study.json", {"gradient_flow": flow, "probe": probe, "length_buckets": buckets,
                                                  "runs": {k: str(v) for k, v in run_dirs.items()}})
    artifacts.write_text(out_dir / "study.md", render_study(flow, probe, buckets, far))
    return out_dir / "study.md"
