"""SavedModel export in TensorFlow Serving's layout: ``<root>/<model_name>/<version>/``.

The ``serving_default`` signature takes raw reviews (1-D ``tf.string`` named
``text``) and returns ``probability`` (float32 P(positive)) and ``label``
(``positive``/``negative``); standardization and vectorization run in the graph.

Beside it, in ``assets.extra/`` (which TF Serving ignores), goes the model's LiteRT twin
(:mod:`sentiment.export.litert_twin`) and ``metadata.json``: the training config and versions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment import artifacts, models
from sentiment.artifacts import METADATA_FILE, SIGNATURE
from sentiment.config import Config
from sentiment.errors import ConfigError, ModelError
from sentiment.evaluation import calibration
from sentiment.export import litert_twin
from sentiment.rundir import RunDir
from sentiment.serving import export_metadata, graph_ops, litert_engine, model_files

log = logging.getLogger(__name__)

LABELS = ("negative", "positive")
WARMUP_FILE = "tf_serving_warmup_requests"  # in assets.extra/: TF Serving replays these before it reports the model ready
# Warm-up requests: the batch sizes and lengths a server meets first (one short review, a mixed batch, one long review).
WARMUP_REVIEWS = (
    ("This movie was wonderful",),
    ("Worst film I have ever seen", "The plot was thin<br />but the acting saved it.", "ok", "I laughed, I cried, I would watch it again!") * 2,
    (" ".join(["A long review that rambles on about the film, its cast and its ending."] * 60),),
)
SERVING_CHUNK = 256  # reviews per model call inside the serving signature
TMP_PREFIX = ".tmp-"  # export in progress: <model_root>/.tmp-<pid>-<random>/
# Metadata keys whose strings may be paths of this machine: the config's data and pretraining fields, the run's and
# its encoder's folders, its command.
PATH_KEYS = frozenset(("data", "tfds_data_dir", "unlabelled", "pretrain_dir", "source", "run_dir", "recalibrated_from",
                       "vectors", "encoder", "command"))
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a model's folder under --models-dir


def next_version(model_root: Path) -> int:
    """Return one more than the highest integer-named entry under ``model_root`` (1 if none)."""
    versions = artifacts.numbered_versions(model_root)
    return int(versions[-1].name) + 1 if versions else 1


def make_serving_fn(model: keras.Model, temperature: float = 1.0, threshold: float = 0.5) -> tf.types.experimental.GenericFunction:
    """Wrap an end-to-end model as a tf.function: text string [n] → probability float32 [n], label string [n].

    ``probability`` is the model's, calibrated by ``temperature`` (sigmoid(logit(p) / T), as
    ``calibration.apply_temperature``); ``label`` is positive at or above ``threshold``. The model
    runs on ``SERVING_CHUNK`` reviews at a time, so a request of any size needs the memory of one chunk.
    """
    chunk = SERVING_CHUNK

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="text")])
    def serve(text):
        parts = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=tf.TensorShape([None]))
        for start in tf.range(0, tf.shape(text)[0], chunk):
            part = model(text[start : start + chunk], training=False)
            parts = parts.write(start // chunk, tf.reshape(tf.cast(part, tf.float32), [-1]))
        probability = parts.concat()
        if temperature != 1.0:
            p = tf.clip_by_value(tf.cast(probability, tf.float64), calibration.EPSILON, 1 - calibration.EPSILON)
            probability = tf.cast(tf.sigmoid((tf.math.log(p) - tf.math.log1p(-p)) / temperature), tf.float32)
        label = tf.where(probability >= threshold, LABELS[1], LABELS[0])
        return {"probability": probability, "label": label}

    return serve


def write_warmup_requests(path: Path, batches: tuple[tuple[str, ...], ...] = WARMUP_REVIEWS) -> None:
    """Write TF Serving's warm-up file: one ``PredictionLog`` (its own protos) per batch of reviews, as TFRecords."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path.parent.mkdir(parents=True, exist_ok=True)
    with artifacts.atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=SIGNATURE))
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(list(batch), dtype=tf.string))
            log_record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log_record.SerializeToString())


def text_vectorizers(model: keras.Model) -> list[keras.layers.TextVectorization]:
    """Return every TextVectorization layer inside ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.TextVectorization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += text_vectorizers(layer)
    return found


def write_savedmodel(model: keras.Model, path: Path, calibrated: dict | None = None) -> None:
    """Write ``model`` as a SavedModel with the named ``serving_default`` signature (``calibrated``: its temperature and threshold)."""
    archive = keras.export.ExportArchive()
    # Only the vocabulary lookup tables are tracked by hand: add_endpoint tracks the variables the
    # signature captures, and tracking the whole model too would store every weight twice.
    for vectorizer in text_vectorizers(model):
        archive.track(vectorizer)
    # ExportArchive (not model.export) so inputs/outputs keep their names: keras-team/keras#19458.
    calibrated = calibrated or calibration.IDENTITY
    archive.add_endpoint(SIGNATURE, make_serving_fn(model, calibrated["temperature"], calibrated["threshold"]))
    archive.write_out(str(path), verbose=False)


def export_model(model: keras.Model, config: Config, model_root: Path, metadata: dict | None = None, litert: bool = True) -> Path:
    """Export atomically as the next version under ``model_root`` (with its LiteRT twin); return the version directory.

    ``metadata["calibration"]`` (temperature and threshold, as ``calibration.calibrate`` returns) is baked into the signature.
    Absolute paths in the config and ``metadata`` are written as file names (``portable``).
    """
    metadata = metadata or {}
    model_root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_exports(model_root)
    # Hidden (servers only load integer dirs) and named after this process, so a killed export is recognisable.
    tmp = model_root / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        write_savedmodel(model, tmp, metadata.get("calibration"))
        artifacts.write_json(
            tmp / METADATA_FILE,
            portable({
                "config": config.to_dict(),
                "vocab_size": config.vocab_size,
                "max_len": config.max_len,
                "exported": dt.datetime.now().isoformat(timespec="seconds"),
                "versions": artifacts.library_versions(),
                **metadata,
            }),
        )
        write_warmup_requests(tmp / artifacts.LITERT_DIR / WARMUP_FILE)
        if litert:
            litert_twin.write_litert_from_keras(model, config, tmp)
        model_files.write_checksums(tmp)  # last: it covers every file above
        for _ in range(100):  # another exporter may take a version between our check and the rename
            target = model_root / str(next_version(model_root))
            try:
                os.rename(tmp, target)
                break
            except OSError:
                if not target.exists():
                    raise
        else:
            raise ModelError(f"could not claim a free version under {model_root}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s", target)
    return target


def remove_abandoned_exports(model_root: Path) -> None:
    """Delete temporary export dirs whose process has died (a SIGKILL leaves them behind, hidden)."""
    for tmp in model_root.glob(f"{TMP_PREFIX}*"):
        pid = tmp.name[len(TMP_PREFIX) :].split("-")[0]
        if pid.isdigit() and not artifacts.process_alive(int(pid)):
            log.info("removing %s, left by an export that did not finish", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def export_run(run_dir: str | Path, export_root: str | Path = "saved_models", name: str | None = None) -> Path:
    """Export a finished run's end-to-end model to ``<export_root>/<name or model>/<next version>/``."""
    run = RunDir(Path(run_dir))
    run.require_finished()
    config = run.load_config()
    model = models.load_model(run.model)
    # Headline figures travel with the model; per-review test predictions (for paired tests) stay in the run.
    metrics = {k: v for k, v in artifacts.read_json(run.metrics).items() if k != "predictions"}
    run_info = artifacts.read_json(run.run_info) if run.run_info.exists() else {}
    metadata = {"run_dir": str(run.path), "command": run_info.get("argv"), "metrics": metrics,
                "calibration": calibration_of(metrics)}
    return export_model(model, config, Path(export_root) / check_model_name(name or config.model), metadata)


def portable_path(value: str) -> str:
    """Return ``value`` with an absolute path cut to its file name: an export leaves no path of the exporting machine."""
    return Path(value).name if Path(value).expanduser().is_absolute() else value


def portable(value: object, key: str = "") -> object:
    """Return ``value`` (JSON) with the absolute paths under path keys (``PATH_KEYS``, ``--flag=/path`` in a command) cut to file names.

    Only those keys: a review quoted in the metrics that starts with "/" stays as it is.
    """
    if isinstance(value, dict):
        return {k: portable(item, k) for k, item in value.items()}
    if isinstance(value, list):
        return [portable(item, key) for item in value]
    if not (isinstance(value, str) and value and key in PATH_KEYS):
        return value
    if value.startswith("--") and "=" in value:
        flag, _, path = value.partition("=")
        return f"{flag}={portable_path(path)}"
    return portable_path(value)


def check_model_name(name: str) -> str:
    """Return ``name`` if it is one folder name (letters, digits, ``_ . -``, not hidden), so the export stays under its root."""
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(f"model name {name!r} is invalid: give one folder name of letters, digits, '_', '.' or '-' (not starting with '.')")
    return name


def add_checksums(version_dir: str | Path) -> Path:
    """Write the checksums file of an export made before them, after checking what can be checked; return its path.

    Its LiteRT files must match their own manifest and its graph pass the op check; an export that has
    checksums already is verified instead (a damaged file is never blessed).
    """
    path = Path(version_dir)
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is not an exported model (no saved_model.pb)")
    if (path / model_files.CHECKSUMS_FILE).exists():
        model_files.verify_files(path)
        return path / model_files.CHECKSUMS_FILE
    graph_ops.check_ops(path)
    export_metadata.read_metadata(path)
    if litert_engine.has_litert(path):
        litert_engine.read_manifest(path / artifacts.LITERT_DIR)
    return model_files.write_checksums(path)


def calibration_of(metrics: dict) -> dict:
    """The temperature and threshold a run's metrics.json carries (none before calibration existed: the identity)."""
    found = calibration.carried(metrics)
    return {k: found[k] for k in ("method", "temperature", "threshold", "target")}


def recalibrate(version_dir: str | Path, data: str | None = None) -> Path:
    """Re-export an exported version as the next one, calibrated on its own validation reviews, with warm-up records and LiteRT twin.

    The classifier and vocabularies come from the SavedModel itself (its run is not needed) and
    are checked against it on probe reviews; ``data`` (default: the source it was trained on)
    is split with its training settings, so validation and test are the reviews it never trained on.
    """
    from sentiment.data import preprocessing
    from sentiment.evaluation import scoring

    path = Path(version_dir)
    loaded, metadata, config, vocabulary, ngram_vocabulary = litert_twin.read_version(path)
    model = models.build_end_to_end(litert_twin.savedmodel_classifier(loaded, config, path),
                                    preprocessing.make_preprocessor(config, vocabulary, ngram_vocabulary))
    score = scoring.model_scorer(model)  # uncalibrated
    check_rebuilt(score, loaded, metadata, litert_twin.probe_reviews(vocabulary, ngram_vocabulary, config.max_len), path)
    data = scoring.training_data(config, data, str(path))
    splits = preprocessing.load_clean_splits(dataclasses.replace(config, data=data, max_examples=0))
    log.info("calibrating on %d validation reviews of %s", len(splits.validation), data)
    raw_validation = scoring.score_in_length_order(score, splits.validation.texts)
    calibrated = calibration.calibrate(splits.validation.labels, raw_validation, config.threshold)
    raw_test = scoring.score_in_length_order(score, splits.test.texts)
    calibrated["test"] = calibration.before_after(splits.test.labels, raw_test, calibration.apply_temperature(raw_test, calibrated["temperature"]),
                                                  calibrated["threshold"])
    kept = {k: v for k, v in metadata.items() if k not in ("config", "vocab_size", "max_len", "exported", "versions", "calibration")}
    return export_model(model, config, path.parent, {**kept, "calibration": calibrated, "recalibrated_from": str(path)})


def check_rebuilt(score: Callable[[list[str]], np.ndarray], loaded: object, metadata: dict, reviews: list[str], path: Path) -> None:
    """Raise a ModelError unless the rebuilt model, calibrated as the export was, answers as its SavedModel does."""
    temperature = float(calibration.carried(metadata)["temperature"])
    expected = loaded.signatures[SIGNATURE](text=tf.constant(reviews))["probability"].numpy()
    difference = float(np.max(np.abs(calibration.apply_temperature(score(reviews), temperature) - expected)))
    if not difference <= 1e-4:
        raise ModelError(f"the model rebuilt from {path} differs from its SavedModel by {difference:.3g}; not re-exported")
