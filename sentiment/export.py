"""SavedModel export in TensorFlow Serving's layout: ``<root>/<model_name>/<version>/``.

The ``serving_default`` signature takes raw reviews (1-D ``tf.string`` named
``text``) and returns ``probability`` (float32 P(positive)) and ``label``
(``positive``/``negative``); standardization and vectorization run in the graph.

Beside it, in ``assets.extra/`` (which TF Serving ignores), goes the model's LiteRT twin
for ``sentiment.litert_engine``: the recurrent branch converted with batch 1 and any
length, the vocabularies, and a wide model's TF-IDF weights. It is checked against the
model on probe reviews before its manifest is written; ``add_litert`` adds it to a
version exported without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
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

from sentiment import artifacts, litert_engine, models
from sentiment.artifacts import LITERT_DIR, LITERT_MANIFEST, METADATA_FILE, SIGNATURE
from sentiment.config import Config
from sentiment.errors import ModelError, first_line
from sentiment.input_pipeline import TOKEN_IDS
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
            write_litert_from_keras(model, config, tmp)
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
        if pid.isdigit() and not process_alive(int(pid)):
            log.info("removing %s, left by an export that did not finish", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Return True if a process with this PID runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


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


# ---------------------------------------------------------------------------
# The LiteRT twin (read by sentiment.litert_engine)

LITERT_STAGING_PREFIX = ".litert-"  # <version>/assets.extra/.litert-<pid>-<random>/ while being written and checked
PROBE_REVIEWS = 12


def litert_branch(classifier: keras.Model, config: Config) -> keras.Model:
    """Return the recurrent branch for one review: token ids int32 [1, time] → P(positive), or a wide model's deep logit [1, 1]."""
    output = "deep_logit" if config.ngram_vocab_size else "probability"
    branch = keras.Model(classifier.get_layer(TOKEN_IDS).output, classifier.get_layer(output).output)
    # Batch 1: with a free batch size the converted LSTM needs TensorList ops, which LiteRT's builtins lack.
    token_ids = keras.Input(batch_shape=(1, None), dtype="int32", name=TOKEN_IDS)
    return keras.Model(token_ids, branch(token_ids), name=f"{classifier.name}_litert")


def convert_to_litert(model: keras.Model) -> bytes:
    """Return ``model`` as a LiteRT flatbuffer of builtin ops.

    from_keras_model, not from_saved_model: the LSTM loop of a converted SavedModel fails at run time (READ_VARIABLE).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Saved artifact at <temp dir>" while converting
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def wide_arrays(classifier: keras.Model) -> dict[str, np.ndarray]:
    """Return the wide branch's weights for NumPy: the idf, the wide_logit kernel and bias, and the feature scale."""
    tfidf = classifier.get_layer("ngram_tfidf")
    kernel, bias = classifier.get_layer("wide_logit").get_weights()
    return {
        "idf": np.asarray(keras.ops.convert_to_numpy(tfidf.idf), np.float32),
        "kernel": kernel.reshape(-1).astype(np.float32),
        "bias": np.float32(bias.reshape(-1)[0]),
        "scale": np.float32(tfidf.scale),
    }


def write_litert_files(
    classifier: keras.Model, config: Config, vocabulary: list[str], ngram_vocabulary: list[str] | None, truncate: str, directory: Path
) -> dict:
    """Write the LiteRT model, vocabularies and (wide models) wide.npz into ``directory``; return their manifest."""
    from sentiment.preprocessing import save_vocabulary

    directory.mkdir(parents=True)
    (directory / litert_engine.MODEL_FILE).write_bytes(convert_to_litert(litert_branch(classifier, config)))
    save_vocabulary(vocabulary, directory / litert_engine.VOCABULARY_FILE)
    manifest = {
        "format": litert_engine.MANIFEST_FORMAT,
        "model": litert_engine.MODEL_FILE,
        "output": "deep_logit" if config.ngram_vocab_size else "probability",
        "max_len": config.max_len,
        "truncate": truncate,
        "vocabulary": litert_engine.VOCABULARY_FILE,
    }
    if config.ngram_vocab_size:
        save_vocabulary(ngram_vocabulary, directory / litert_engine.NGRAM_VOCABULARY_FILE)
        np.savez(directory / litert_engine.WIDE_FILE, **wide_arrays(classifier))
        manifest.update(ngram_vocabulary=litert_engine.NGRAM_VOCABULARY_FILE, wide=litert_engine.WIDE_FILE)
    names = [manifest[key] for key in ("model", "vocabulary", "ngram_vocabulary", "wide") if key in manifest]
    manifest["files"] = {name: litert_engine.file_digest(directory / name) for name in names}
    return manifest


def probe_reviews(vocabulary: list[str], ngram_vocabulary: list[str] | None, max_len: int) -> list[str]:
    """Return seeded reviews of the model's own words and n-grams, with unknown words, markup, !? and over-long ones."""
    rng = np.random.default_rng(0)
    words, grams = vocabulary[2:] or ["film"], (ngram_vocabulary or [])[2:]
    lengths = [1, 2, 5, 20, max_len - 1, max_len, max_len + 7, 2 * max_len + 3]
    lengths += rng.integers(3, 60, size=PROBE_REVIEWS - len(lengths)).tolist()
    reviews = []
    for i, length in enumerate(lengths):
        tokens = [str(t) for t in rng.choice(words, size=max(int(length), 1))]
        for at in range(3, len(tokens), 7):
            tokens[at] = ["Unseenword", "<br />", "!", "?", str(rng.choice(grams)) if grams else "GREAT"][(i + at) % 5]
        reviews.append(" ".join(tokens))
    return reviews


def check_litert(directory: Path, vocabulary: list[str], ngram_vocabulary: list[str] | None, max_len: int,
                 reference: Callable[[list[str]], np.ndarray]) -> dict:
    """Compare the LiteRT files in ``directory`` with ``reference`` (the model) on probe reviews; ModelError beyond tolerance."""
    reviews = probe_reviews(vocabulary, ngram_vocabulary, max_len)
    expected = np.asarray(reference(reviews), np.float64).reshape(-1)
    got = litert_engine.load_classifier(directory).probabilities(reviews).astype(np.float64)
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= litert_engine.TOLERANCE:  # NaN fails too
        raise ModelError(f"the LiteRT model differs from the model by {difference:.3g} on probe reviews (tolerance {litert_engine.TOLERANCE})")
    return {"reviews": len(reviews), "max_abs_difference": difference}


def add_litert_files(
    version_dir: Path, classifier: keras.Model, config: Config, vocabulary: list[str], ngram_vocabulary: list[str] | None,
    truncate: str, reference: Callable[[list[str]], np.ndarray],
) -> Path:
    """Write, check and install the LiteRT twin into ``version_dir/assets.extra``; return the manifest path.

    Files are written and checked in a hidden staging dir, then renamed into place with the
    manifest last (an older manifest is removed first), so a reader never mixes old and new files.
    """
    assets = Path(version_dir) / LITERT_DIR
    assets.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(assets)
    staging = assets / f"{LITERT_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    try:
        manifest = write_litert_files(classifier, config, vocabulary, ngram_vocabulary, truncate, staging)
        artifacts.write_json(staging / LITERT_MANIFEST, manifest)
        manifest["check"] = check_litert(staging, vocabulary, ngram_vocabulary, config.max_len, reference)
        manifest.update(created=dt.datetime.now().isoformat(timespec="seconds"), versions=litert_versions())
        artifacts.write_json(staging / LITERT_MANIFEST, manifest)
        (assets / LITERT_MANIFEST).unlink(missing_ok=True)
        for name in manifest["files"]:
            os.replace(staging / name, assets / name)
        os.replace(staging / LITERT_MANIFEST, assets / LITERT_MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("LiteRT model written (largest difference from the model on %d probe reviews: %.2g)",
             manifest["check"]["reviews"], manifest["check"]["max_abs_difference"])
    return assets / LITERT_MANIFEST


def litert_versions() -> dict[str, str]:
    """Return the versions of the converter and runtime the LiteRT files were made and checked with."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"tensorflow": tf.__version__}
    with contextlib.suppress(PackageNotFoundError):
        versions["ai-edge-litert"] = version("ai-edge-litert")
    return versions


def remove_abandoned_staging(assets: Path) -> None:
    """Delete LiteRT staging dirs whose process has died."""
    for staging in assets.glob(f"{LITERT_STAGING_PREFIX}*"):
        pid = staging.name[len(LITERT_STAGING_PREFIX) :].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def write_litert_from_keras(model: keras.Model, config: Config, version_dir: Path) -> None:
    """Add the LiteRT twin of an end-to-end Keras model to a version being exported; warn and go on if it cannot be made."""
    try:
        preprocessor = model.get_layer("preprocessor")
        vocabulary = preprocessor.get_layer("vectorizer").get_vocabulary()
        ngram_vocabulary = preprocessor.get_layer("ngram_vectorizer").get_vocabulary() if config.ngram_vocab_size else None

        def reference(texts: list[str]) -> np.ndarray:
            return keras.ops.convert_to_numpy(model(tf.constant(texts), training=False)).reshape(-1)

        add_litert_files(version_dir, model.get_layer(config.model), config, vocabulary, ngram_vocabulary, config.truncate, reference)
    except Exception as e:  # noqa: BLE001  (a layer the converter cannot express, no ai-edge-litert: the SavedModel still serves)
        log.warning("exported without a LiteRT model (predict.py will use the SavedModel): %s", first_line(e))


def add_litert(version_dir: str | Path) -> Path:
    """Add the LiteRT twin to an exported version dir, leaving its SavedModel untouched; return the manifest path.

    Everything comes from the version itself: weights and vocabulary tables from the
    SavedModel, the config from its metadata.json; the run that made it is not needed.
    """
    path = Path(version_dir)
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is not an exported model (no saved_model.pb)")
    metadata = artifacts.read_json(path / METADATA_FILE) if (path / METADATA_FILE).is_file() else {}
    if not isinstance(metadata.get("config"), dict):
        raise ModelError(f"{path} has no training config in {METADATA_FILE}")
    config = Config.from_dict(metadata["config"])
    loaded = load_savedmodel(path)
    vocabulary, ngram_vocabulary = savedmodel_vocabularies(loaded, config, path)
    serve = loaded.signatures[SIGNATURE]

    def reference(texts: list[str]) -> np.ndarray:
        return serve(text=tf.constant(texts))["probability"].numpy()

    truncate = metadata["config"].get("truncate", "head")  # older exports read the head, as prediction.Predictor assumes
    return add_litert_files(path, savedmodel_classifier(loaded, config, path), config, vocabulary, ngram_vocabulary, truncate, reference)


def load_savedmodel(path: Path) -> object:
    """Load a SavedModel with tf.saved_model.load, or raise a one-line ModelError."""
    from google.protobuf.message import DecodeError

    try:
        return tf.saved_model.load(str(path))
    except (OSError, KeyError, ValueError, IndexError, tf.errors.OpError, DecodeError) as e:
        raise ModelError(f"cannot load model {path}: {first_line(e)}") from e


def lookup_tables(root: object) -> list:
    """Return the hash tables reachable from a loaded SavedModel (TextVectorization's vocabularies)."""
    found, seen, todo = [], set(), [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if "HashTable" in type(node).__name__ and hasattr(node, "resource_handle"):
            found.append(node)
        children = getattr(node, "_trackable_children", None)
        if callable(children):
            with contextlib.suppress(Exception):  # some restored functions cannot list children; they hold no tables
                todo += list(children().values())
    return found


def table_vocabulary(table: object) -> list[str]:
    """Return a lookup table's vocabulary in id order, "" and [UNK] first (ids 0 and 1 are not in the table)."""
    keys, values = tf.raw_ops.LookupTableExportV2(table_handle=table.resource_handle, Tkeys=tf.string, Tvalues=tf.int64)
    order = np.argsort(values.numpy())
    if not np.array_equal(values.numpy()[order], np.arange(2, len(order) + 2)):
        raise ModelError("a vocabulary table does not number its tokens 2, 3, ... as TextVectorization does")
    return ["", "[UNK]"] + [k.decode("utf-8") for k in keys.numpy()[order]]


def savedmodel_vocabularies(loaded: object, config: Config, path: Path) -> tuple[list[str], list[str] | None]:
    """Return the token vocabulary and (wide models) the 1-2-gram vocabulary held in a SavedModel's lookup tables."""
    vocabularies = [table_vocabulary(t) for t in lookup_tables(loaded)]
    words = [v for v in vocabularies if not any(" " in token for token in v)]
    grams = [v for v in vocabularies if any(" " in token for token in v)]
    expected = (1, 1) if config.ngram_vocab_size else (1, 0)
    if (len(words), len(grams)) != expected:
        raise ModelError(f"cannot tell the vocabularies in {path}: {len(words)} word and {len(grams)} n-gram lookup tables")
    return words[0], grams[0] if grams else None


def weight_key(name: str) -> str:
    """A variable's path without ``:0`` and Keras' ``_<n>`` de-duplication suffixes (matches a rebuilt model's with a SavedModel's)."""
    return "/".join(re.sub(r"_\d+$", "", part) for part in name.removesuffix(":0").split("/"))


def savedmodel_classifier(loaded: object, config: Config, path: Path) -> keras.Model:
    """Rebuild the classifier from ``config`` and give it the SavedModel's weights, matched by name and shape."""
    saved: dict[str, list] = {}
    # The serving signature's captured variables: present in every export (older ones also list them as .variables).
    for variable in loaded.signatures[SIGNATURE].variables:
        saved.setdefault(weight_key(variable.name), []).append(variable)
    classifier = models.build_model(config)
    for weight in classifier.weights:
        matches = [v for v in saved.get(weight_key(weight.path), []) if tuple(v.shape) == tuple(weight.shape)]
        if len(matches) != 1:
            raise ModelError(f"cannot rebuild the {config.model} classifier from {path}: {len(matches)} variables match {weight.path}")
        weight.assign(matches[0].numpy())
    return classifier
