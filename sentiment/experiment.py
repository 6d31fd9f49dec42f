"""One training run, top to bottom: config → data → model → training → evaluation → saved artefacts.

A run directory holds everything needed to understand and reuse the run:

    config.json        the Config (so nothing else needs flags later)
    run.json           library versions, devices, start time, command line
    vocabulary.txt     the vectorizer's vocabulary, adapted on training reviews only
    history.csv        one row per epoch; tensorboard/ the same for TensorBoard
    checkpoints/best.keras   the best model on token ids (lowest validation loss)
    model.keras        the final end-to-end model on raw strings
    metrics.json       test metrics, training time and throughput
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, evaluation, input_pipeline, models, training
from sentiment.artifacts import CONFIG_FILE, METRICS_FILE, MODEL_FILE, RUN_FILE, VOCAB_FILE
from sentiment.config import Config
from sentiment.errors import ConfigError

log = logging.getLogger(__name__)


def default_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """Return ``runs/<timestamp>-<model>``."""
    return Path(root) / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{config.model}"


def check_run_dir(run_dir: Path, config: Config) -> None:
    """Refuse a run dir that holds a finished run, or an unfinished one started with other settings."""
    if (run_dir / METRICS_FILE).exists():
        raise ConfigError(f"{run_dir} holds a finished run; choose another --run-dir")
    saved = run_dir / CONFIG_FILE
    if saved.exists():
        previous = Config.load(saved).to_dict()
        changed = [k for k, v in config.to_dict().items() if previous.get(k) != v]
        if changed:
            raise ConfigError(f"{run_dir} was started with different settings ({', '.join(changed)}); use a new --run-dir")


def prepare_run_dir(run_dir: Path, config: Config, argv: list[str] | None) -> None:
    """Create the run dir and record config and provenance (kept as they are when resuming)."""
    check_run_dir(run_dir, config)
    saved = run_dir / CONFIG_FILE
    if saved.exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_json(saved, config.to_dict())
    artifacts.write_json(
        run_dir / RUN_FILE,
        {
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "argv": argv or [],
            "versions": artifacts.library_versions(),
            "devices": [d.name for d in tf.config.list_physical_devices()],
        },
    )


def load_or_adapt_vocabulary(run_dir: Path, texts: list[str], config: Config) -> keras.layers.TextVectorization:
    """Reuse the run's saved vocabulary (on resume) or adapt one on the training reviews and save it."""
    path = run_dir / VOCAB_FILE
    if path.exists():
        return input_pipeline.make_vectorizer(config, vocabulary=input_pipeline.load_vocabulary(path), ragged=True)
    vectorizer = input_pipeline.adapt_vectorizer(texts, config)
    input_pipeline.save_vocabulary(vectorizer, path)
    return vectorizer


def save_model(model: keras.Model, path: Path) -> None:
    """Save a .keras model atomically (temp file beside it, then rename)."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    tmp.replace(path)


def throughput(history: list[dict[str, float]], reviews: int, tokens: int) -> dict[str, float]:
    """Return wall time and training speed in reviews/s and tokens/s over all finished epochs."""
    train_seconds = sum(row.get("train_seconds", 0.0) for row in history)
    return {
        "epochs": len(history),
        "wall_seconds": round(sum(row.get("epoch_seconds", 0.0) for row in history), 2),
        "train_seconds": round(train_seconds, 2),
        "epoch_seconds": [round(row.get("epoch_seconds", 0.0), 2) for row in history],
        "reviews_per_second": round(reviews * len(history) / train_seconds, 1) if train_seconds else None,
        "tokens_per_second": round(tokens * len(history) / train_seconds, 1) if train_seconds else None,
    }


def run(
    config: Config,
    run_dir: str | Path | None = None,
    verbose: int = 2,
    argv: list[str] | None = None,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> Path:
    """Train, evaluate and save one model as ``config`` describes; return the run directory."""
    run_dir = Path(run_dir) if run_dir else default_run_dir(config)
    config.validate()
    check_run_dir(run_dir, config)
    training.seed_everything(config.seed)
    training.log_devices()
    splits = input_pipeline.load_splits(config)  # before the run dir exists: bad data leaves nothing behind
    prepare_run_dir(run_dir, config, argv)
    log.info("run dir %s, config %s", run_dir, config.to_dict())
    vectorizer = load_or_adapt_vocabulary(run_dir, splits.train.texts, config)
    train_ds = input_pipeline.make_train_dataset(splits.train, vectorizer, config)
    val_ds = input_pipeline.make_eval_dataset(splits.validation, vectorizer, config)
    train_tokens = int(np.minimum(input_pipeline.token_lengths(splits.train.texts), config.max_len).sum())

    classifier = models.compile_model(models.build_model(config), config)
    log.info("%s: %d parameters; %s", config.model, classifier.count_params(), models.describe_kernel(classifier))
    started = time.perf_counter()
    result = training.fit(classifier, train_ds, val_ds, config, run_dir, verbose, extra_callbacks)
    log.info("training finished in %.1f s (this session)", time.perf_counter() - started)

    dense = input_pipeline.make_vectorizer(config, vocabulary=vectorizer.get_vocabulary())
    end_to_end = models.build_end_to_end(classifier, dense, config)
    save_model(end_to_end, run_dir / MODEL_FILE)

    test_labels, test_probs = evaluation.predict_dataset(
        classifier, input_pipeline.make_eval_dataset(splits.test, vectorizer, config)
    )
    val_labels, val_probs = evaluation.predict_dataset(classifier, val_ds)
    test_lengths = input_pipeline.token_lengths(splits.test.texts)
    report = {
        "model": config.model,
        "split": "test",
        **evaluation.evaluate_predictions(splits.test.texts, test_labels, test_probs, test_lengths, config.max_len),
        "validation": evaluation.classification_metrics(val_labels, val_probs),
        "data": {"source": config.data, "sizes": splits.sizes(), "train_tokens": train_tokens},
        "training": {**throughput(result.history, len(splits.train), train_tokens), "best_epoch": result.best_epoch + 1},
        "parameters": int(classifier.count_params()),
        "seed": config.seed,
        "versions": artifacts.library_versions(),
    }
    evaluation.write_report(run_dir, f"{config.model} on {config.data}", report, test_labels, test_probs, result.history)
    training.clear_backup(run_dir)
    log.info(
        "test accuracy %.4f, F1 %.4f, ROC-AUC %.4f; validation accuracy %.4f",
        report["accuracy"], report["f1"], report["roc_auc"] or float("nan"), report["validation"]["accuracy"],
    )
    return run_dir
