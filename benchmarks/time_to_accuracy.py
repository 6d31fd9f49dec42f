"""Time to accuracy on CPU: the LSTM and wide-and-deep recipes, their fast variants, keras-io's BiLSTM and the cheap anchors, on one split.

    python benchmarks/time_to_accuracy.py --data imdb_train.csv.gz [--max-examples 0] [--only wide]

Each recipe trains through this project's pipeline on the same train/validation reviews
(seed 42). Prints one row per recipe: training wall time (learning the vocabularies, then
fit with validation; data loading and test evaluation excluded), epochs, best validation
accuracy, the validation accuracy of the model the run keeps (early stopping restores the
lowest validation loss), and the time until validation accuracy first came within 0.3
points of a reference recipe's best: today's LSTM recipe for the LSTM rows and keras-io,
the shipped wide_lstm recipe for the wide rows. A second table is the cost of each model: its
training time next to its validation and test accuracy (95% bootstrap interval), with the
anchors fitted on the same training reviews: TF-IDF + LR, NBSVM-bi and (if the optional
``fasttext`` package is installed: pip install fasttext-wheel) fastText with bigrams.
Run it on an idle machine.
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentiment import cli  # noqa: E402
from sentiment.config import Config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def recipe_fields(recipe: dict) -> dict:
    """Return a recipe's Config fields: its own, or those of the configs/ file it names."""
    from sentiment.config import read_recipe

    return read_recipe(CONFIGS / recipe["recipe"]) if "recipe" in recipe else recipe


def recipe_model(recipe: dict) -> str:
    """Return the registered model a recipe trains."""
    return recipe_fields(recipe)["model"]


TOLERANCE = 0.003  # "the same accuracy": within 0.3 points
# Recipes through train.py's own path: Config fields, or a recipe file of configs/ (the model's preset fills the rest).
# Each row names its reference row: the target is that row's best validation accuracy minus TOLERANCE.
LSTM_REFERENCE, WIDE_REFERENCE = "today: lstm (batch 64, no XLA)", "wide_lstm v1 (configs/wide_lstm_v1.json)"
RECIPES = {
    LSTM_REFERENCE: {"model": "lstm", "jit_compile": "off"},
    "lstm, batch 256, lr 2e-3": {"model": "lstm", "jit_compile": "off", "batch_size": 256, "learning_rate": 2e-3},
    "lstm, batch 256, lr 2e-3, XLA": {"model": "lstm", "jit_compile": "on", "batch_size": 256, "learning_rate": 2e-3},
    WIDE_REFERENCE: {"recipe": "wide_lstm_v1.json"},
    "wide_lstm v2 (configs/wide_lstm_v2.json: last 256 tokens, batch 128, lr 2e-3, ≤ 3 epochs)": {"recipe": "wide_lstm_v2.json"},
    "wide_lstm (its preset, v3: v2 for one epoch)": {"model": "wide_lstm"},
    "wide (wide_lstm without its LSTM: the n-gram branch alone)": {"model": "wide"},
    "lstm (configs/lstm_len800.json, the shipped recurrent-only recipe)": {"recipe": "lstm_len800.json"},
}
KERAS_IO = "keras-io BiLSTM (2 epochs, batch 32)"
REFERENCE = {name: WIDE_REFERENCE if recipe_model(recipe).startswith("wide") else LSTM_REFERENCE for name, recipe in RECIPES.items()}
REFERENCE[KERAS_IO] = LSTM_REFERENCE


def run_recipe(overrides: dict, data: str, max_examples: int, root: Path) -> tuple[float, list[dict], dict]:
    """Train one project recipe with ``sentiment.training.experiment.run``; return its preprocessing seconds, per-epoch history and test metrics."""
    from sentiment import artifacts, models
    from sentiment.config import make_config
    from sentiment.training import experiment, fitting

    fields = recipe_fields(overrides)
    config = make_config(fields["model"], data=data, max_examples=max_examples, **{k: v for k, v in fields.items() if k != "model"})
    fitting.seed_everything(config.seed, deterministic_ops=not models.use_xla(config))  # as train.py does
    run_dir = experiment.run(config, root / f"run-{len(list(root.iterdir()))}", verbose=0)
    metrics = artifacts.read_json(run_dir / "metrics.json")
    return metrics["training"]["preprocessing_seconds"], fitting.read_history_file(run_dir / "history.csv"), accuracy_figures(metrics)


def run_keras_io_bilstm(data: str, max_examples: int) -> tuple[float, list[dict], dict]:
    """keras-io "Bidirectional LSTM on IMDB": Embedding 128, 2×BiLSTM-64, last 200 tokens, batch 32, Adam, 2 epochs."""
    import keras

    from sentiment.config import make_config
    from sentiment.data import batching, preprocessing
    from sentiment.evaluation import metrics, scoring
    from sentiment.training import fitting

    config = make_config("bilstm", data=data, max_examples=max_examples, max_len=200, batch_size=32)
    fitting.seed_everything(config.seed)
    splits = preprocessing.load_clean_splits(config)
    started = time.perf_counter()
    preprocessor = preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(splits.train.texts, config))
    setup = time.perf_counter() - started
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(config.vocab_size, 128, mask_zero=True)(ids)  # masked: this pipeline pads on the right
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    timer, epoch = fitting.EpochTimer(), batching.epoch_variable()
    warnings.filterwarnings("ignore", message="Your input ran out of data")  # bucketed data has no known length
    history = model.fit(batching.make_train_dataset(splits.train, preprocessor, config, epoch),
                        validation_data=batching.make_eval_dataset(splits.validation, preprocessor, config),
                        epochs=2, callbacks=[fitting.ShuffleEpoch(epoch), timer], verbose=0)
    _, probs = scoring.predict_dataset(model, batching.make_eval_dataset(splits.test, preprocessor, config))
    return setup, [{"epoch": i, **{k: v[i] for k, v in history.history.items()}} for i in range(len(history.history["loss"]))], \
        accuracy_figures(metrics.classification_metrics(splits.test.labels, probs))


def accuracy_figures(report: dict) -> dict:
    """Return a report's test accuracy and its 95% bootstrap interval (metrics.classification_metrics computes both)."""
    return {"accuracy": report["accuracy"], "interval": report["accuracy_ci95"]}


def run_anchors(data: str, max_examples: int) -> list[dict]:
    """Fit the cheap anchors on the recipes' training reviews; return (name, fit seconds, validation and test accuracy) rows."""
    from sentiment.config import make_config
    from sentiment.evaluation import anchors, baseline

    config = make_config("wide_lstm", data=data, max_examples=max_examples)
    rows = []
    for name in anchors.ANCHORS:
        report = baseline.run_baseline(config, anchor=name)
        rows.append({"model": name, "seconds": report["training"]["wall_seconds"], "val_accuracy": report["validation"]["accuracy"],
                     "test": accuracy_figures(report)})
    fasttext_row = run_fasttext(config)
    return rows + ([fasttext_row] if fasttext_row else [])


def run_fasttext(config: Config) -> dict | None:
    """fastText with bigrams on the same standardized training reviews, or None without the optional package."""
    import fasttext_anchor

    if not fasttext_anchor.installed():
        print("fastText skipped: pip install fasttext-wheel to time it")
        return None
    from sentiment.data import preprocessing
    from sentiment.evaluation import metrics

    splits = preprocessing.load_clean_splits(config)
    started = time.perf_counter()
    model = fasttext_anchor.fit(preprocessing.standardize_texts(splits.train.texts), splits.train.labels, config.seed)
    seconds = time.perf_counter() - started
    val, test = (fasttext_anchor.probabilities(model, preprocessing.standardize_texts(s.texts)) for s in (splits.validation, splits.test))
    return {"model": "fastText, bigrams", "seconds": seconds,
            "val_accuracy": metrics.classification_metrics(splits.validation.labels, val)["accuracy"],
            "test": accuracy_figures(metrics.classification_metrics(splits.test.labels, test))}


def time_to(setup: float, history: list[dict], target: float) -> float | None:
    """Return the seconds (vocabularies + epochs) until validation accuracy first reached ``target``, or None."""
    elapsed = setup
    for row in history:
        elapsed += row["epoch_seconds"]
        if row["val_accuracy"] >= target:
            return elapsed
    return None


def summarize(name: str, setup: float, history: list[dict], targets: dict[str, float]) -> dict:
    """Return wall time (vocabularies + fit), epochs, best and kept validation accuracy and times to the targets of one recipe."""
    # Early stopping keeps the epoch of lowest validation loss; keras-io's recipe keeps its last epoch.
    kept = history[-1] if name == KERAS_IO else min(history, key=lambda row: row["val_loss"])
    return {"recipe": name, "seconds": setup + sum(row["epoch_seconds"] for row in history), "epochs": len(history),
            "val_accuracy": max(row["val_accuracy"] for row in history), "kept": kept["val_accuracy"],
            "target": targets[REFERENCE[name]], "to_target": time_to(setup, history, targets[REFERENCE[name]]),
            "to_lstm_target": time_to(setup, history, targets[LSTM_REFERENCE])}


def speedup(base: float | None, value: float | None) -> str:
    """Format base / value as a speed-up, or – when either is missing."""
    return f"{base / value:.2f}×" if base and value else "–"


def seconds(value: float | None) -> str:
    """Format seconds, or 'not reached'."""
    return f"{value:.0f}" if value is not None else "not reached"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a text,label CSV (e.g. imdb_train.csv.gz), aclImdb, or imdb")
    parser.add_argument("--max-examples", type=int, default=0, help="cap on training reviews (0 = all)")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="train only the recipes whose name contains one of these (their reference recipes always train)")
    args = parser.parse_args()
    cli.setup_logging(verbose=False)
    cli.start_tensorflow_quietly()
    chosen = [name for name in [*RECIPES, KERAS_IO] if not args.only or any(t in name for t in args.only) or name in REFERENCE.values()]
    with tempfile.TemporaryDirectory() as tmp:
        histories = {name: run_recipe(recipe, args.data, args.max_examples, Path(tmp)) for name, recipe in RECIPES.items() if name in chosen}
    if KERAS_IO in chosen:
        histories[KERAS_IO] = run_keras_io_bilstm(args.data, args.max_examples)
    anchors = run_anchors(args.data, args.max_examples)
    targets = {name: max(row["val_accuracy"] for row in histories[name][1]) - TOLERANCE for name in (LSTM_REFERENCE, WIDE_REFERENCE)}
    rows = [summarize(name, setup, history, targets) for name, (setup, history, _) in histories.items()]
    by_name = {r["recipe"]: r for r in rows}
    for name, target in targets.items():
        print(f"target of '{name}' (and of the rows measured against it): validation accuracy ≥ {target:.4f}, its best minus {TOLERANCE * 100:.1f} points")
    print("| recipe | training wall time (s) | epochs | best validation accuracy | kept model's validation accuracy "
          "| target | time to target (s) | speed-up to target | speed-up in wall time | time to the LSTM target (s) | speed-up to the LSTM target |")
    print("|" + " --- |" * 11)
    lstm = by_name[LSTM_REFERENCE]
    for r in rows:
        base = by_name[REFERENCE[r["recipe"]]]
        print(f"| {r['recipe']} | {r['seconds']:.0f} | {r['epochs']} | {r['val_accuracy']:.4f} | {r['kept']:.4f} | {r['target']:.4f} "
              f"| {seconds(r['to_target'])} | {speedup(base['to_target'], r['to_target'])} | {speedup(base['seconds'], r['seconds'])} "
              f"| {seconds(r['to_lstm_target'])} | {speedup(lstm['to_lstm_target'], r['to_lstm_target'])} |")
    print_costs(rows, histories, anchors)
    return 0


def print_costs(rows: list[dict], histories: dict, anchors: list[dict]) -> None:
    """Print each model's training time beside its kept model's validation accuracy and its test accuracy, anchors included."""
    print()
    print("| model | training time (s) | validation accuracy | test accuracy (95% interval) |")
    print("| --- | --- | --- | --- |")
    costs = [{"model": r["recipe"], "seconds": r["seconds"], "val_accuracy": r["kept"], "test": histories[r["recipe"]][2]} for r in rows]
    for c in costs + anchors:
        low, high = c["test"]["interval"]
        print(f"| {c['model']} | {c['seconds']:.0f} | {c['val_accuracy']:.4f} | {c['test']['accuracy']:.4f} ({low:.3f}–{high:.3f}) |")


if __name__ == "__main__":
    sys.exit(main())
