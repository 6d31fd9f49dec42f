"""One training run, top to bottom: config → data → preprocessing → model → training → evaluation → artefacts.

The run directory's layout is described in :mod:`sentiment.rundir`.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import tempfile
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.config import Config
from sentiment.data import batching, preprocessing, streaming
from sentiment.data.sources import Source, Split, Splits
from sentiment.errors import ClusterError, ConfigError, DataError, first_line
from sentiment.evaluation import calibration, metrics, report, scoring
from sentiment.rundir import RunDir
from sentiment.training import adversarial, distribute, fitting, pretraining, stacking, teacher, word_vectors

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


def throughput(history: list[dict[str, float]], reviews: int | None, tokens: int | None) -> dict[str, float]:
    """Return wall time and training speed in reviews/s and tokens/s over all finished epochs (None where not counted: streams)."""
    train_seconds = sum(row.get("train_seconds", 0.0) for row in history)
    return {
        "epochs": len(history),
        "wall_seconds": round(sum(row.get("epoch_seconds", 0.0) for row in history), 2),
        "train_seconds": round(train_seconds, 2),
        "epoch_seconds": [round(row.get("epoch_seconds", 0.0), 2) for row in history],
        "reviews_per_second": round(reviews * len(history) / train_seconds, 1) if train_seconds and reviews else None,
        "tokens_per_second": round(tokens * len(history) / train_seconds, 1) if train_seconds and tokens else None,
    }


def run(
    config: Config,
    run_dir: str | Path | None = None,
    verbose: int = 2,
    argv: list[str] | None = None,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> Path:
    """Train, evaluate and save one model as ``config`` describes; return the run directory.

    Seeding is the caller's (the entry point's) job: see ``fitting.seed_everything``.
    Under ``--distribute multi_worker`` every worker calls this; only the chief writes ``run_dir``.
    """
    strategy = distribute.make_strategy(config)  # first: collective ops are set up before any other op runs
    if distribute.is_multi_worker(strategy):
        if run_dir is None:
            raise ConfigError("--distribute multi_worker needs --run-dir: the same path for every worker")
        if config.refit:
            raise ConfigError("--refit is not supported with --distribute multi_worker")
        if config.branches == "stacked":
            raise ConfigError("--branches stacked is not supported with --distribute multi_worker")
        if config.pretrain_epochs or config.word_vector_epochs or config.teacher:
            raise ConfigError("--pretrain-epochs, --word-vector-epochs and --teacher are not supported with --distribute multi_worker")
    for flag, asked in (("--refit", config.refit), ("--teacher", config.teacher)):
        if asked and streaming.should_stream(config):
            raise ConfigError(f"{flag} needs the reviews in memory; use --stream off")
    run_dir = RunDir(Path(run_dir) if run_dir else default_run_dir(config))
    if not distribute.is_chief(strategy):
        return train_as_worker(config, run_dir, strategy)
    run_dir.check_can_train(config)
    fitting.log_devices()
    splits = preprocessing.load_clean_splits(config)  # before the run dir exists: bad data leaves nothing behind
    with run_dir.lock(), streaming.stream_errors_explained(config.data):
        run_dir.check_can_train(config)  # again: another process may have claimed it meanwhile
        record_run(run_dir, config, argv)
        log.info("run dir %s: %s on %s, seed %d (every setting in its config.json)", run_dir, config.model, config.data, config.seed)
        train_and_report(config, run_dir, splits, verbose, extra_callbacks, strategy)
    return run_dir.path


def vocabulary_sample(splits: Splits, config: Config) -> list[str]:
    """Return the training reviews the vocabularies are learned from: all in memory, the first ``stream_sample`` of a stream."""
    sample = splits.train.bounded(config.stream_sample)
    # Reviews in memory were checked as loaded (sources.check_splits); a stream's are only known now.
    if splits.train.streamed and len(np.unique(sample.labels)) < 2:
        raise DataError(f"the first {len(sample)} training reviews of {config.data} hold fewer than two classes")
    return sample.texts


def train_as_worker(config: Config, chief_run: RunDir, strategy: tf.distribute.Strategy) -> Path:
    """Train as a non-chief worker: the same steps as the chief, writing only to a scratch directory removed afterwards."""
    if chief_run.is_finished():  # the chief refuses it too
        raise ConfigError(f"{chief_run} holds a finished run; choose another --run-dir")
    splits = preprocessing.load_clean_splits(config)
    with tempfile.TemporaryDirectory(prefix=f"worker-{distribute.worker_index(strategy)}-") as scratch, \
            streaming.stream_errors_explained(config.data):
        run = RunDir(Path(scratch))
        preprocessor, ngram_idf = prepare_preprocessing(run, vocabulary_sample(splits, config), config)
        with strategy.scope():
            classifier = models.compile_model(models.build_model(config, ngram_idf), config)
        fit_distributed(classifier, splits, preprocessor, config, run, chief_run, strategy)
    return chief_run.path


def fit_distributed(classifier: keras.Model, splits: Splits, preprocessor: keras.Model, config: Config, run: RunDir,
                    chief_run: RunDir, strategy: tf.distribute.Strategy) -> fitting.FitResult:
    """Run the multi-worker loop on this worker's shards of the train and validation reviews."""

    def shards(source: Source, make: Callable) -> distribute.DatasetFn:
        def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make(source.shard(context.num_input_pipelines, context.input_pipeline_id), preprocessor, config)

        return dataset

    shuffle_epoch = batching.epoch_variable()
    make_train = functools.partial(batching.make_train_dataset, epoch=shuffle_epoch)
    try:
        return distribute.fit_multi_worker(classifier, shards(splits.train, make_train), shards(splits.validation, batching.make_eval_dataset),
                                           config, run, chief_run, strategy, shuffle_epoch)
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError) as e:
        # A collective op fails on every survivor once a peer is gone: one line each, not a gRPC traceback.
        raise ClusterError(f"worker {distribute.worker_index(strategy)} lost touch with the other workers "
                           f"({' '.join(first_line(e).split())[:160]}); relaunch every worker with the same command to resume") from e


def train_and_report(
    config: Config, run: RunDir, splits: Splits, verbose: int, extra_callbacks: list | None,
    strategy: tf.distribute.Strategy | None = None,
) -> None:
    """Fit (or resume) the classifier, optionally refit it on train + validation, save, evaluate and report."""
    strategy = strategy or tf.distribute.get_strategy()
    started = time.perf_counter()
    preprocessor, ngram_idf = prepare_preprocessing(run, vocabulary_sample(splits, config), config)
    preprocessing_seconds = time.perf_counter() - started
    xla = models.use_xla(config)  # then batches are padded to bucket widths: XLA compiles once per shape
    data_config = distribute.pipeline_config(config, strategy)
    val_ds = batching.make_eval_dataset(splits.validation, preprocessor, data_config, fixed_shapes=xla)
    vectors = learn_vectors_if_asked(config, splits)
    embedding = word_vectors.embedding_matrix(vectors, preprocessing.load_vocabulary(run.vocabulary), config) if vectors else None
    encoder = pretrain_if_asked(config, run, splits, verbose)
    train_split, teacher_record = teacher_labelled(config, splits)
    with strategy.scope():
        classifier = build_classifier(config, ngram_idf, encoder, embedding)
        # Built now, so its initial weights do not depend on whether phase 1 was interrupted and resumed.
        refit_classifier = build_classifier(config, ngram_idf, encoder, embedding) if config.refit else None
    log.info("%s: %d parameters; %s; XLA %s", config.model, classifier.count_params(), models.describe_kernel(classifier),
             "on" if classifier.jit_compile else "off")
    started = time.perf_counter()
    if distribute.is_multi_worker(strategy):
        result = fit_distributed(classifier, splits, preprocessor, config, run, run, strategy)
        classifier = models.load_model(run.checkpoint)  # the best epoch, as a single-device model for evaluation
    else:
        shuffle_epoch = batching.epoch_variable()
        train_ds = batching.make_train_dataset(train_split, preprocessor, data_config, shuffle_epoch, fixed_shapes=xla)
        result = fitting.fit(fitted_model(classifier, config), train_ds, val_ds, config, run, shuffle_epoch, verbose, extra_callbacks)
    log.info("training finished in %.1f s (this session)", time.perf_counter() - started)
    mix = stacking.stack(classifier, val_ds) if config.branches == "stacked" else None
    # Validation figures are the early-stopped model's: a refit model has trained on those reviews.
    val_labels, val_probs = scoring.predict_dataset(classifier, val_ds)
    test = splits.test.bounded(config.stream_sample)  # the report reads test reviews into memory: at most stream_sample of a stream
    test_ds = batching.make_eval_dataset(test, preprocessor, config, fixed_shapes=xla)
    refit_info = None
    if config.refit:
        # The early-stopped model's test accuracy is kept so the report shows what the refit changed.
        before = metrics.classification_metrics(test.labels, scoring.predict_dataset(classifier, test_ds)[1])["accuracy"]
        refit_info = {**refit_on_all_labelled(data_config, run, train_split, splits.validation, preprocessor, refit_classifier,
                                              result.best_epoch + 1, verbose),
                      "test_accuracy_before": before}
        classifier = refit_classifier
    end_to_end = models.build_end_to_end(classifier, preprocessor)
    models.save_model(end_to_end, run.model)
    _, raw_test_probs = scoring.predict_dataset(classifier, test_ds)
    # --refit trains on the validation reviews, so nothing is fitted on them then (the threshold must be a number).
    calibrated = calibration.calibrate(val_labels, val_probs, config.threshold, fit=config.calibrate and not config.refit)
    test_probs = calibration.apply_temperature(raw_test_probs, calibrated["temperature"])
    calibrated["test"] = calibration.before_after(test.labels, raw_test_probs, test_probs, calibrated["threshold"])
    streamed = splits.train.streamed
    # Throughput counts every review trained on, the teacher's included.
    train_tokens = None if streamed else int(np.minimum(preprocessing.token_lengths(train_split.texts), config.max_len).sum())
    result_report = scoring.build_report(
        test, test_probs, config.max_len, calibrated["threshold"], scoring.model_scorer(end_to_end, calibrated["temperature"]),
        model=config.model,
        split="test",
        validation=metrics.classification_metrics(val_labels, calibration.apply_temperature(val_probs, calibrated["temperature"])),
        calibration=calibrated,
        data={"source": config.data, "streamed": streamed, "train_tokens": train_tokens,
              "sizes": {"validation": len(val_labels), "test": len(test)} if streamed else splits.sizes()},
        training={**training_summary(result, None if streamed else len(train_split), train_tokens, preprocessing_seconds, refit_info),
                  **({"pretraining": encoder} if encoder else {}), **({"word_vectors": vectors} if vectors else {}),
                  **({"teacher": teacher_record} if teacher_record else {}),
                  **({"stacking": mix} if mix else {})},
        parameters=int(classifier.count_params()),
        seed=config.seed,
        versions=artifacts.library_versions(),
    )
    report.write_report(run.path, f"{config.model} on {config.data}", result_report, test.labels, test_probs, result.history)
    fitting.clear_backup(run)
    log.info(
        "test accuracy %.4f, F1 %.4f, ROC-AUC %.4f; validation accuracy %.4f",
        result_report["accuracy"], result_report["f1"], result_report["roc_auc"] or float("nan"),
        result_report["validation"]["accuracy"],
    )


def held_out_texts(splits: Splits, config: Config) -> list[str]:
    """Return the validation and test reviews, which no pretraining may read."""
    return splits.validation.bounded(config.stream_sample).texts + splits.test.bounded(config.stream_sample).texts


def pretrain_if_asked(config: Config, run: RunDir, splits: Splits, verbose: int) -> dict | None:
    """With ``--pretrain-epochs``, return the pretrained encoder's record (reused or trained now), else None."""
    if not config.pretrain_epochs:
        return None
    vocabulary = preprocessing.load_vocabulary(run.vocabulary)
    return pretraining.pretrain(config, vocabulary, vocabulary_sample(splits, config), held_out_texts(splits, config), verbose)


def teacher_labelled(config: Config, splits: Splits) -> tuple[Source, dict | None]:
    """Return the reviews the classifier trains on: the training split, plus the unlabelled reviews a ``--teacher`` labelled."""
    if not config.teacher:
        return splits.train, None
    return teacher.with_teacher_labels(config, splits.train, splits.validation, held_out_texts(splits, config))


def learn_vectors_if_asked(config: Config, splits: Splits) -> dict | None:
    """With ``--word-vector-epochs``, return the word vectors' record (reused or learned now), else None."""
    if not config.word_vector_epochs:
        return None
    return word_vectors.learn(config, vocabulary_sample(splits, config), held_out_texts(splits, config))


def build_classifier(config: Config, ngram_idf: np.ndarray | None, encoder: dict | None, embedding: np.ndarray | None = None) -> keras.Model:
    """Build and compile the classifier; its embedding starts from ``embedding`` (float32 [vocab, dim]) and then ``encoder`` when given."""
    classifier = models.compile_model(models.build_model(config, ngram_idf), config)
    if embedding is not None:
        classifier.get_layer("embedding").set_weights([embedding])
    if encoder:
        pretraining.load_encoder(classifier, encoder["encoder"], pretraining.transferred_layers(config))
    return classifier


def fitted_model(classifier: keras.Model, config: Config) -> keras.Model:
    """Return the model training fits, sharing the classifier's layers: the classifier itself, or with stacked branches a model of
    the branches' own outputs; wrapped to train on adversarially perturbed word vectors too with ``--adversarial``."""
    if config.branches != "stacked":
        return models.compile_model(adversarial.wrap(classifier, config.adversarial), config) if config.adversarial else classifier
    trainer = stacking.branch_trainer(classifier)
    if config.adversarial:
        trainer = adversarial.wrap(trainer, config.adversarial)
    # Named for what it measures: the two branches' mean accuracy, each alone (the stacked model's comes after training).
    trainer.compile(optimizer=classifier.optimizer, loss=stacking.branch_loss,
                    metrics=[keras.metrics.MeanMetricWrapper(stacking.branch_accuracy, name=stacking.BRANCH_ACCURACY)], jit_compile=False)
    return trainer


def training_summary(result: fitting.FitResult, reviews: int | None, tokens: int | None, preprocessing_seconds: float,
                     refit_info: dict | None) -> dict:
    """Return the report's training section: throughput, best epoch, vocabulary time and (with --refit) the refit's."""
    summary = {**throughput(result.history, reviews, tokens), "best_epoch": result.best_epoch + 1,
               "preprocessing_seconds": round(preprocessing_seconds, 2)}  # vocabularies (learned, or reloaded on resume)
    if refit_info:
        summary["refit"] = refit_info
        summary["wall_seconds"] = round(summary["wall_seconds"] + refit_info["wall_seconds"], 2)
    return summary


def refit_on_all_labelled(
    config: Config, run: RunDir, train: Split, validation: Split, preprocessor: keras.Model, classifier: keras.Model, epochs: int,
    verbose: int,
) -> dict:
    """Train the fresh ``classifier`` on ``train`` + ``validation`` for the early-stopped epoch count; return its timing."""
    labelled = Split(train.texts + validation.texts, np.concatenate([train.labels, validation.labels]))
    log.info("refitting on %d train + validation reviews for %d epoch(s)", len(labelled), epochs)
    shuffle_epoch = batching.epoch_variable()
    train_ds = batching.make_train_dataset(labelled, preprocessor, config, shuffle_epoch, fixed_shapes=models.use_xla(config))
    history = fitting.refit(fitted_model(classifier, config), train_ds, config, run, epochs, shuffle_epoch, verbose)
    return {
        "epochs": epochs,
        "reviews": len(labelled),
        "wall_seconds": round(sum(row.get("epoch_seconds", 0.0) for row in history), 2),
    }
