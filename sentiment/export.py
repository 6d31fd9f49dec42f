"""SavedModel export in TensorFlow Serving's layout: ``<root>/<model_name>/<version>/``.

The ``serving_default`` signature takes raw reviews (1-D ``tf.string`` named
``text``) and returns ``probability`` (float32 P(positive)) and ``label``
(``positive``/``negative``); standardization and vectorization run in the graph.

Beside it, in ``assets.extra/`` (which TF Serving ignores), goes the model's LiteRT twin
(:mod:`sentiment.litert_export`) and ``metadata.json``: the training config and versions.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from sentiment import artifacts, litert_export, models
from sentiment.artifacts import METADATA_FILE, SIGNATURE
from sentiment.config import Config
from sentiment.errors import ModelError
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)

LABELS = ("negative", "positive")
SERVING_CHUNK = 256  # reviews per model call inside the serving signature
TMP_PREFIX = ".tmp-"  # export in progress: <model_root>/.tmp-<pid>-<random>/


def next_version(model_root: Path) -> int:
    """Return one more than the highest integer-named entry under ``model_root`` (1 if none)."""
    versions = artifacts.numbered_versions(model_root)
    return int(versions[-1].name) + 1 if versions else 1


def make_serving_fn(model: keras.Model) -> tf.types.experimental.GenericFunction:
    """Wrap an end-to-end model as a tf.function: text string [n] → probability float32 [n], label string [n].

    The model runs on ``SERVING_CHUNK`` reviews at a time, so a request of any size needs
    the memory of one chunk.
    """
    chunk = SERVING_CHUNK

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="text")])
    def serve(text):
        parts = tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=tf.TensorShape([None]))
        for start in tf.range(0, tf.shape(text)[0], chunk):
            part = model(text[start : start + chunk], training=False)
            parts = parts.write(start // chunk, tf.reshape(tf.cast(part, tf.float32), [-1]))
        probability = parts.concat()
        label = tf.where(probability >= 0.5, LABELS[1], LABELS[0])
        return {"probability": probability, "label": label}

    return serve


def text_vectorizers(model: keras.Model) -> list[keras.layers.TextVectorization]:
    """Return every TextVectorization layer inside ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.TextVectorization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += text_vectorizers(layer)
    return found


def write_savedmodel(model: keras.Model, path: Path) -> None:
    """Write ``model`` as a SavedModel with the named ``serving_default`` signature."""
    archive = keras.export.ExportArchive()
    # Only the vocabulary lookup tables are tracked by hand: add_endpoint tracks the variables the
    # signature captures, and tracking the whole model too would store every weight twice.
    for vectorizer in text_vectorizers(model):
        archive.track(vectorizer)
    # ExportArchive (not model.export) so inputs/outputs keep their names: keras-team/keras#19458.
    archive.add_endpoint(SIGNATURE, make_serving_fn(model))
    archive.write_out(str(path), verbose=False)


def export_model(model: keras.Model, config: Config, model_root: Path, metadata: dict | None = None, litert: bool = True) -> Path:
    """Export atomically as the next version under ``model_root`` (with its LiteRT twin); return the version directory."""
    model_root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_exports(model_root)
    # Hidden (servers only load integer dirs) and named after this process, so a killed export is recognisable.
    tmp = model_root / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        write_savedmodel(model, tmp)
        artifacts.write_json(
            tmp / METADATA_FILE,
            {
                "config": config.to_dict(),
                "vocab_size": config.vocab_size,
                "max_len": config.max_len,
                "exported": dt.datetime.now().isoformat(timespec="seconds"),
                "versions": artifacts.library_versions(),
                **(metadata or {}),
            },
        )
        if litert:
            litert_export.write_litert_from_keras(model, config, tmp)
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
    metadata = {"run_dir": str(run.path), "command": run_info.get("argv"), "metrics": metrics}
    return export_model(model, config, Path(export_root) / (name or config.model), metadata)
