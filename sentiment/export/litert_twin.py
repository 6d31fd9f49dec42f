"""The LiteRT twin of an export, in ``<version>/assets.extra/`` (read by ``sentiment.serving.litert_engine``).

The recurrent branch (none for the n-gram-only model): an LSTM or SimpleRNN rebuilt by ``plain_branch`` as one
model of any rows and length; another cell converted by Keras twice, for ``BATCH`` rows and for one. Then the vocabularies, and a wide model's TF-IDF weights; checked against the model on probe reviews before its manifest is
written. ``add_litert`` adds a twin to a version exported without one, rebuilding the
classifier from the SavedModel.
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

from sentiment import artifacts, models
from sentiment.artifacts import LITERT_DIR, LITERT_MANIFEST, METADATA_FILE, SIGNATURE
from sentiment.config import Config
from sentiment.data import fast_tokenizer
from sentiment.data.batching import TOKEN_IDS
from sentiment.errors import ModelError, first_line
from sentiment.evaluation import calibration
from sentiment.export import plain_branch
from sentiment.serving import export_metadata, graph_ops, litert_engine, model_files

log = logging.getLogger(__name__)

LITERT_STAGING_PREFIX = ".litert-"  # <version>/assets.extra/.litert-<pid>-<random>/ while being written and checked
PROBE_REVIEWS = 40  # more than litert_engine.SINGLE_MAX: the check runs the batched model, then each review alone
BATCH = litert_engine.BATCH  # rows per LiteRT call of a large input: batched, a step costs less per review than one review at a time


def litert_branch(classifier: keras.Model, config: Config, rows: int = BATCH) -> keras.Model:
    """Return the recurrent branch on ``rows`` reviews: token ids int32 [rows, time] (0-padded) → P(positive), or a wide model's deep logit [rows, 1]."""
    output = "deep_logit" if config.ngram_vocab_size else "probability"
    branch = keras.Model(classifier.get_layer(TOKEN_IDS).output, classifier.get_layer(output).output)
    # A fixed batch: with a free one the converted LSTM needs TensorList ops, which LiteRT's builtins lack, and a
    # batch-1 model cannot be resized to more rows (its reshapes hold the 1). The mask is honoured, so padded rows
    # give what each review gives alone (tests/export/test_litert_twin.py); the engine fills short batches with padding rows.
    # Converted twice, batched (BATCH rows) for large calls and for one review, so a small request pays for no
    # padding rows (measured: one review of 120 tokens ~0.4 ms against ~5 ms as a padded batch of 64).
    token_ids = keras.Input(batch_shape=(rows, None), dtype="int32", name=TOKEN_IDS)
    return keras.Model(token_ids, branch(token_ids), name=f"{classifier.name}_litert")


def convert_to_litert(model: keras.Model) -> bytes:
    """Return ``model`` as a LiteRT flatbuffer of builtin ops.

    from_keras_model, not from_saved_model: the LSTM loop of a converted SavedModel fails at run time (READ_VARIABLE).
    """
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Saved artifact at <temp dir>" while converting
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


PLAIN_LOOP, KERAS_LOOP = "plain_loop", "keras"  # how a twin's recurrent branch was converted (litert.json "branch")


def convert_branch(classifier: keras.Model, config: Config, path: Path) -> str:
    """Write the recurrent branch as a LiteRT model at ``path``; return how it was converted.

    The plain-TensorFlow rebuild (``plain_branch``: linear in the review's length, any number of rows) when the
    branch is one it knows (LSTM, SimpleRNN); else, or if its conversion fails, Keras' own on ``BATCH`` rows.
    """
    weights = plain_branch.branch_weights(classifier, config)
    if weights is not None:
        try:
            path.write_bytes(plain_branch.convert_plain_branch(weights))
            return PLAIN_LOOP
        except Exception as e:  # noqa: BLE001  (a converter that refuses it: Keras' conversion is slower but exact)
            log.warning("the recurrent branch converted by Keras instead (its plain rebuild failed: %s)", first_line(e))
    path.write_bytes(convert_to_litert(litert_branch(classifier, config)))
    return KERAS_LOOP


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


def looks_up_words(classifier: keras.Model, config: Config) -> bool:
    """Return True if the plain branch of ``classifier`` looks its input products up per word (``plain_branch.word_tables``)."""
    weights = plain_branch.branch_weights(classifier, config)
    return weights is not None and plain_branch.looks_up_words(weights)


def write_litert_files(
    classifier: keras.Model, config: Config, vocabulary: list[str], ngram_vocabulary: list[str] | None, truncate: str, directory: Path
) -> dict:
    """Write the LiteRT model, the vocabulary and (wide models) the n-gram index and wide.npz into ``directory``; return their manifest."""
    from sentiment.data.preprocessing import save_vocabulary

    directory.mkdir(parents=True)
    recurrent = config.has_recurrent_part()
    single = litert_engine.MODEL_FILE  # the plain loop takes any number of rows: one model for one review and for batches
    if recurrent:
        kind = convert_branch(classifier, config, directory / litert_engine.MODEL_FILE)
        if kind == KERAS_LOOP:  # Keras' conversion fixes the rows: BATCH for batches, and one more model for one review
            (directory / litert_engine.SINGLE_FILE).write_bytes(convert_to_litert(litert_branch(classifier, config, rows=1)))
            single = litert_engine.SINGLE_FILE
    save_vocabulary(vocabulary, directory / litert_engine.VOCABULARY_FILE)
    manifest = {
        "format": litert_engine.MANIFEST_FORMAT if recurrent else litert_engine.NUMPY_ONLY_FORMAT,
        "branch": kind if recurrent else None,  # how the recurrent branch was converted: PLAIN_LOOP or KERAS_LOOP
        # The n-gram-only model has nothing for LiteRT to run: its twin is the tokenizer and the NumPy wide branch.
        "model": litert_engine.MODEL_FILE if recurrent else None,
        "single": single if recurrent else None,
        "output": ("deep_logit" if config.ngram_vocab_size else "probability") if recurrent else None,
        "max_len": config.max_len,
        "truncate": truncate,
        # How the engine groups a few reviews into calls: a branch whose input products are looked up is cheap per row,
        # so its calls cost more than their padding (litert_engine.GROUP_SPREAD).
        "group_spread": None if recurrent and kind == PLAIN_LOOP and looks_up_words(classifier, config) else litert_engine.GROUP_SPREAD,
        "vocabulary": litert_engine.VOCABULARY_FILE,
    }
    if config.ngram_vocab_size:
        # The n-grams as word-integer arrays (fast_tokenizer.WordIds): loaded in milliseconds, where parsing the
        # 200,000-line vocabulary took ~0.1 s of every one-review process. (The SavedModel keeps the vocabulary.)
        fast_tokenizer.WordIds.build(vocabulary, ngram_vocabulary).save(directory / litert_engine.NGRAM_INDEX_FILE)
        np.savez(directory / litert_engine.WIDE_FILE, **wide_arrays(classifier))
        manifest.update(ngram_index=litert_engine.NGRAM_INDEX_FILE, wide=litert_engine.WIDE_FILE)
    manifest["batch"] = BATCH
    names = list(dict.fromkeys(manifest[key] for key in ("model", "single", "vocabulary", "ngram_index", "wide") if manifest.get(key)))
    manifest["files"] = {name: model_files.file_digest(directory / name) for name in names}
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
                 reference: Callable[[list[str]], np.ndarray], temperature: float = 1.0) -> dict:
    """Compare the LiteRT files in ``directory``, calibrated by ``temperature``, with ``reference`` (the model) on probe reviews; ModelError beyond tolerance."""
    reviews = probe_reviews(vocabulary, ngram_vocabulary, max_len)
    expected = np.asarray(reference(reviews), np.float64).reshape(-1)
    classifier = litert_engine.load_classifier(directory)
    batched = classifier.probabilities(reviews)  # more than SINGLE_MAX: the batched model
    single = np.concatenate([classifier.probabilities([review]) for review in reviews])  # one at a time: the single-review model
    difference = max(float(np.max(np.abs(calibration.apply_temperature(raw, temperature).astype(np.float64) - expected)))
                     for raw in (batched, single))
    if not difference <= litert_engine.TOLERANCE:  # NaN fails too
        raise ModelError(f"the LiteRT model differs from the model by {difference:.3g} on probe reviews (tolerance {litert_engine.TOLERANCE})")
    return {"reviews": len(reviews), "max_abs_difference": difference}


def add_litert_files(
    version_dir: Path, classifier: keras.Model, config: Config, vocabulary: list[str], ngram_vocabulary: list[str] | None,
    truncate: str, reference: Callable[[list[str]], np.ndarray], temperature: float = 1.0,
) -> Path:
    """Write, check and install the LiteRT twin into ``version_dir/assets.extra``; return the manifest path.

    ``reference`` gives the model's probabilities, calibrated by ``temperature`` (an export's signature) or not (1).

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
        manifest["check"] = check_litert(staging, vocabulary, ngram_vocabulary, config.max_len, reference, temperature)
        manifest.update(created=dt.datetime.now().isoformat(timespec="seconds"), versions=litert_versions())
        artifacts.write_json(staging / LITERT_MANIFEST, manifest)
        replaced = listed_files(assets)
        (assets / LITERT_MANIFEST).unlink(missing_ok=True)
        for name in manifest["files"]:
            os.replace(staging / name, assets / name)
        os.replace(staging / LITERT_MANIFEST, assets / LITERT_MANIFEST)
        for name in replaced - set(manifest["files"]):  # the old twin's files the new one no longer has (classifier_single.tflite)
            (assets / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("LiteRT model written (largest difference from the model on %d probe reviews: %.2g)",
             manifest["check"]["reviews"], manifest["check"]["max_abs_difference"])
    return assets / LITERT_MANIFEST


def listed_files(assets: Path) -> set[str]:
    """Return the twin's files an existing manifest names, damaged or not: only names a twin's files have (never an export's own)."""
    try:
        manifest = model_files.read_object(assets / LITERT_MANIFEST)
    except (ModelError, OSError):
        return set()
    twin_files = {litert_engine.MODEL_FILE, litert_engine.SINGLE_FILE, litert_engine.VOCABULARY_FILE, litert_engine.NGRAM_VOCABULARY_FILE,
                  litert_engine.NGRAM_INDEX_FILE, litert_engine.WIDE_FILE}
    return {name for name in (manifest.get(key) for key in litert_engine.FILE_KEYS) if isinstance(name, str)} & twin_files


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
        if pid.isdigit() and not artifacts.process_alive(int(pid)):
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
    loaded, metadata, config, vocabulary, ngram_vocabulary = read_version(path)
    serve = loaded.signatures[SIGNATURE]

    def reference(texts: list[str]) -> np.ndarray:
        return serve(text=tf.constant(texts))["probability"].numpy()

    truncate = metadata["config"].get("truncate", "head")  # older exports read the head, as prediction.Predictor assumes
    temperature = export_metadata.calibration_of(metadata, path)[0]  # the signature applies it
    manifest = add_litert_files(path, savedmodel_classifier(loaded, config, path), config, vocabulary, ngram_vocabulary, truncate, reference,
                                temperature)
    model_files.write_checksums(path)  # last, over the new files too
    return manifest


def read_version(path: Path) -> tuple[object, dict, Config, list[str], list[str] | None]:
    """Open an exported version by itself: its loaded SavedModel, metadata, training config and vocabularies (ModelError if it is none)."""
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is not an exported model (no saved_model.pb)")
    if (path / model_files.CHECKSUMS_FILE).exists():  # exports made before checksums have none to verify
        model_files.verify_files(path, model_files.savedmodel_files(path))
    metadata = export_metadata.read_metadata(path)
    if not isinstance(metadata.get("config"), dict):
        raise ModelError(f"{path} has no training config in {METADATA_FILE}")
    config = Config.from_dict(metadata["config"])
    loaded = load_savedmodel(path)
    return (loaded, metadata, config, *savedmodel_vocabularies(loaded, config, path))


def load_savedmodel(path: Path) -> object:
    """Load a SavedModel with tf.saved_model.load, or raise a one-line ModelError."""
    from google.protobuf.message import DecodeError

    graph_ops.check_ops(path)  # before anything in it runs
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
        key = weight_key(weight.path)
        # A Bidirectional layer's variables are saved under their own names (forward_recurrent/...), without the wrapper's.
        found = saved.get(key) or [v for name, variables in saved.items() if key.endswith("/" + name) for v in variables]
        matches = [v for v in found if tuple(v.shape) == tuple(weight.shape)]
        if len(matches) != 1:
            raise ModelError(f"cannot rebuild the {config.model} classifier from {path}: {len(matches)} variables match {weight.path}")
        weight.assign(matches[0].numpy())
    return classifier
