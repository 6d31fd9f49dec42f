"""One training run, top to bottom: config → data → preprocessing → model → training → evaluation → artefacts.

The run directory's layout is described in :mod:`sentiment.rundir`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, evaluation, input_pipeline, metrics, models, preprocessing, report, training
from sentiment.config import Config
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)


def default_run_dir(config: Config, root: str | Path = "runs") -> Path:
    """Return ``runs/<timestamp>-<model>``."""
    return Path(root) / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{config.model}"


def record_run(run: RunDir, config: Config, argv: list[str] | None) -> None:
    """Record config and provenance when a run starts (kept as they are when it resumes)."""
    if run.config.exists():
        return
    artifacts.write_json(run.config, config.to_dict())
    artifacts.write_json(
        run.run_info,
        {
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "argv": argv or [],
            "versions": artifacts.library_versions(),
            "devices": [d.name for d in tf.config.list_physical_devices()],
        },
    )


def load_or_learn_vocabulary(path: Path, learn: Callable[[], list[str]]) -> list[str]:
    """Reuse a vocabulary the run saved at ``path`` (on resume) or learn it from the training reviews and save it."""
    if path.exists():
        return preprocessing.load_vocabulary(path)
    vocabulary = learn()
    preprocessing.save_vocabulary(vocabulary, path)
    return vocabulary


def prepare_preprocessing(run: RunDir, texts: list[str], config: Config) -> tuple[keras.Model, np.ndarray | None]:
    """Return the run's preprocessing layer and, with a wide branch, its n-gram idf (float32 [ngram vocab])."""
    vocabulary = load_or_learn_vocabulary(run.vocabulary, lambda: preprocessing.learn_vocabulary(texts, config))
    if not config.ngram_vocab_size:
        return preprocessing.make_preprocessor(config, vocabulary), None
    ngrams = load_or_learn_vocabulary(run.ngram_vocabulary, lambda: preprocessing.learn_ngram_vocabulary(texts, config))
    idf = preprocessing.inverse_document_frequency(texts, config, ngrams)
    return preprocessing.make_preprocessor(config, vocabulary, ngrams), idf


def save_model(model: keras.Model, path: Path) -> None:
    """Save a .keras model atomically."""
    with artifacts.atomic_path(path) as tmp:
        model.save(tmp)


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
    """Train, evaluate and save one model as ``config`` describes; return the run directory.

    Seeding is the caller's (the entry point's) job: see ``training.seed_everything``.
    """
    run_dir = RunDir(Path(run_dir) if run_dir else default_run_dir(config))
    run_dir.check_can_train(config)
    training.log_devices()
    splits = preprocessing.load_clean_splits(config)  # before the run dir exists: bad data leaves nothing behind
    with run_dir.lock():
        run_dir.check_can_train(config)  # again: another process may have claimed it meanwhile
        record_run(run_dir, config, argv)
        log.info("run dir %s, config %s", run_dir, config.to_dict())
        train_and_report(config, run_dir, splits, verbose, extra_callbacks)
    return run_dir.path


def train_and_report(
    config: Config, run: RunDir, splits: input_pipeline.Splits, verbose: int, extra_callbacks: list | None
) -> None:
    """Fit (or resume) the classifier, optionally refit it on train + validation, save, evaluate and report."""
    preprocessor, ngram_idf = prepare_preprocessing(run, splits.train.texts, config)
    xla = models.use_xla(config)  # then batches are padded to bucket widths: XLA compiles once per shape
    train_ds = input_pipeline.make_train_dataset(splits.train, preprocessor, config, fixed_shapes=xla)
    val_ds = input_pipeline.make_eval_dataset(splits.validation, preprocessor, config, fixed_shapes=xla)
    train_tokens = int(np.minimum(preprocessing.token_lengths(splits.train.texts), config.max_len).sum())

    classifier = models.compile_model(models.build_model(config, ngram_idf), config)
    # Built now, so its initial weights do not depend on whether phase 1 was interrupted and resumed.
    refit_classifier = models.compile_model(models.build_model(config, ngram_idf), config) if config.refit else None
    log.info("%s: %d parameters; %s; XLA %s", config.model, classifier.count_params(), models.describe_kernel(classifier),
             "on" if classifier.jit_compile else "off")
    started = time.perf_counter()
    result = training.fit(classifier, train_ds, val_ds, config, run, verbose, extra_callbacks)
    log.info("training finished in %.1f s (this session)", time.perf_counter() - started)
    # Validation figures are the early-stopped model's: a refit model has trained on those reviews.
    val_labels, val_probs = evaluation.predict_dataset(classifier, val_ds)
    training_info = {**throughput(result.history, len(splits.train), train_tokens), "best_epoch": result.best_epoch + 1}
    test_ds = input_pipeline.make_eval_dataset(splits.test, preprocessor, config, fixed_shapes=xla)
    if config.refit:
        # Kept so the report shows what the refit changed on the same test reviews.
        early_stopped = metrics.classification_metrics(splits.test.labels, evaluation.predict_dataset(classifier, test_ds)[1])
        training_info["refit"] = refit_on_all_labelled(config, run, splits, preprocessor, refit_classifier, result.best_epoch + 1, verbose)
        classifier = refit_classifier
        training_info["refit"]["test_accuracy_before"] = early_stopped["accuracy"]
        training_info["wall_seconds"] = round(training_info["wall_seconds"] + training_info["refit"]["wall_seconds"], 2)
    save_model(models.build_end_to_end(classifier, preprocessor), run.model)

    _, test_probs = evaluation.predict_dataset(classifier, test_ds)
    result_report = evaluation.build_report(
        splits.test, test_probs, config.max_len,
        model=config.model,
        split="test",
        validation=metrics.classification_metrics(val_labels, val_probs),
        data={"source": config.data, "sizes": splits.sizes(), "train_tokens": train_tokens},
        training=training_info,
        parameters=int(classifier.count_params()),
        seed=config.seed,
        versions=artifacts.library_versions(),
    )
    report.write_report(run.path, f"{config.model} on {config.data}", result_report, splits.test.labels, test_probs, result.history)
    training.clear_backup(run)
    log.info(
        "test accuracy %.4f, F1 %.4f, ROC-AUC %.4f; validation accuracy %.4f",
        result_report["accuracy"], result_report["f1"], result_report["roc_auc"] or float("nan"),
        result_report["validation"]["accuracy"],
    )


def refit_on_all_labelled(
    config: Config, run: RunDir, splits: input_pipeline.Splits, preprocessor: keras.Model, classifier: keras.Model, epochs: int, verbose: int
) -> dict:
    """Train the fresh ``classifier`` on train + validation for the early-stopped epoch count; return its timing."""
    labelled = input_pipeline.Split(splits.train.texts + splits.validation.texts,
                                    np.concatenate([splits.train.labels, splits.validation.labels]))
    log.info("refitting on %d train + validation reviews for %d epoch(s)", len(labelled), epochs)
    train_ds = input_pipeline.make_train_dataset(labelled, preprocessor, config, fixed_shapes=models.use_xla(config))
    history = training.refit(classifier, train_ds, config, run, epochs, verbose)
    return {
        "epochs": epochs,
        "reviews": len(labelled),
        "wall_seconds": round(sum(row.get("epoch_seconds", 0.0) for row in history), 2),
    }
