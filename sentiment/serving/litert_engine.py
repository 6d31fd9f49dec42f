"""Classifying reviews with the LiteRT twin of an exported model, without importing TensorFlow.

``sentiment.export`` writes, beside the SavedModel in ``<version>/assets.extra/``:

    classifier.tflite      the recurrent branch on token ids: int32 [1, time] (any time) →
                           P(positive), or for a wide model its deep logit [1, 1]
    vocabulary.txt         the token vocabulary (as ``preprocessing.save_vocabulary`` writes it)
    ngram_vocabulary.txt   wide models: the 1-2-gram vocabulary
    wide.npz               wide models: float32 ``idf``, ``kernel`` and scalars ``bias``, ``scale``
    litert.json            the manifest: file sizes and checksums, max_len, truncation, and the
                           largest difference from the SavedModel measured at export; written last

Reviews are tokenized by ``fast_tokenizer`` (the in-graph preprocessing, in Python) and run
one at a time (a Keras LSTM converts to LiteRT builtins only with a batch of 1); a wide
model's TF-IDF logit is computed here in NumPy. Only NumPy and ``ai_edge_litert`` load, so a
process classifies one review in a fraction of the SavedModel's start-up time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from sentiment import calibration
from sentiment.serving import fast_tokenizer
from sentiment.artifacts import LITERT_DIR, LITERT_MANIFEST, METADATA_FILE, read_json
from sentiment.errors import ModelError, SentimentError, first_line
from sentiment.quiet import native_stderr_silenced

ENGINE = "litert"
PACKAGE = "ai-edge-litert==2.3.0"  # as pinned in requirements.txt
MANIFEST_FORMAT = 1
MODEL_FILE = "classifier.tflite"
VOCABULARY_FILE = "vocabulary.txt"
NGRAM_VOCABULARY_FILE = "ngram_vocabulary.txt"
WIDE_FILE = "wide.npz"
TOLERANCE = 1e-4  # largest |P(LiteRT) - P(SavedModel)| an export accepts


def litert_installed() -> bool:
    """Return True if the ``ai_edge_litert`` package can be imported (without importing it)."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def has_litert(path: Path) -> bool:
    """Return True if the exported version dir ``path`` carries a complete LiteRT model (its manifest)."""
    return (Path(path) / LITERT_DIR / LITERT_MANIFEST).is_file()


def file_digest(path: Path) -> dict:
    """Return the size and SHA-256 of a file, as the manifest records them."""
    data = Path(path).read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclasses.dataclass(frozen=True)
class WideBranch:
    """The linear TF-IDF branch of a wide model: NgramTfIdf then Dense ``wide_logit``, in NumPy."""

    idf: np.ndarray  # float32 [ngram_vocab_size]; idf[0] (padding) is 0
    kernel: np.ndarray  # float32 [ngram_vocab_size]
    bias: float
    scale: float

    def logit(self, ngram_ids: np.ndarray) -> float:
        """Return the wide logit of one review's n-gram ids: sublinear tf × idf, L2-normalized, scaled, dotted."""
        ids, counts = np.unique(ngram_ids, return_counts=True)
        weights = (1.0 + np.log(counts)) * self.idf[ids].astype(np.float64)
        norm = np.sqrt(max(float(weights @ weights), 1e-12))  # tf.math.l2_normalize's epsilon
        return float(self.scale * (weights @ self.kernel[ids].astype(np.float64)) / norm + self.bias)


def load_wide_branch(path: Path) -> WideBranch:
    """Read ``wide.npz`` (plain float32 arrays, no pickles)."""
    with np.load(path, allow_pickle=False) as arrays:
        idf = arrays["idf"].astype(np.float32)
        idf[0] = 0.0  # padding never counts, as in NgramTfIdf
        return WideBranch(idf, arrays["kernel"].astype(np.float32), float(arrays["bias"]), float(arrays["scale"]))


class LiteRTClassifier:
    """Raw review → P(positive) with a LiteRT recurrent branch, the Python tokenizer and (wide models) NumPy."""

    def __init__(self, model_path: Path, tokenizer: fast_tokenizer.Tokenizer, wide: WideBranch | None):
        if not litert_installed():
            raise SentimentError(f"the LiteRT engine needs the ai-edge-litert package: pip install {PACKAGE}")
        from ai_edge_litert.interpreter import Interpreter

        self.tokenizer, self.wide = tokenizer, wide
        try:
            # One thread: a batch-1 recurrent step is too small to share; the XNNPACK delegate stays on (faster).
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=1)
            input_detail, output_detail = self._interpreter.get_input_details(), self._interpreter.get_output_details()
            if len(input_detail) != 1 or len(output_detail) != 1 or list(input_detail[0]["shape_signature"]) != [1, -1]:
                raise ValueError(f"expected one input int32 [1, time] and one output, got {input_detail} → {output_detail}")
            self._input, self._output = input_detail[0]["index"], output_detail[0]["index"]
            self._length = 0
            with native_stderr_silenced():
                self._resize(1)
        except (ValueError, RuntimeError) as e:  # not a flatbuffer, truncated, wrong signature
            raise ModelError(f"cannot load LiteRT model {model_path}: {first_line(e)}") from e

    def _resize(self, length: int) -> None:
        """Give the input ``length`` steps (re-planning memory only when the length changes)."""
        if length != self._length:
            self._interpreter.resize_tensor_input(self._input, [1, length])
            self._interpreter.allocate_tensors()
            self._length = length

    def branch_output(self, token_ids: np.ndarray) -> float:
        """Run the recurrent branch on one review's token ids (none: one padding step, as the SavedModel pads it in a batch)."""
        ids = token_ids if len(token_ids) else np.array([fast_tokenizer.PAD], np.int32)
        self._resize(len(ids))
        self._interpreter.set_tensor(self._input, ids.reshape(1, -1))
        self._interpreter.invoke()
        return float(self._interpreter.get_tensor(self._output).reshape(-1)[0])

    def probability(self, text: str) -> float:
        """Return P(positive) of one raw review."""
        encoded = self.tokenizer.encode(text)
        output = self.branch_output(encoded.token_ids)
        if self.wide is None:
            return output
        logit = output + self.wide.logit(encoded.ngram_ids)
        return float(1.0 / (1.0 + np.exp(-logit)))

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) float32 [n] of raw reviews."""
        return np.array([self.probability(t) for t in texts], dtype=np.float32)


def read_manifest(directory: Path) -> dict:
    """Read ``litert.json`` of an ``assets.extra`` dir and check every file it lists is there, whole."""
    manifest = read_json(directory / LITERT_MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"{directory / LITERT_MANIFEST} is not a LiteRT manifest of format {MANIFEST_FORMAT}")
    for name, expected in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ModelError(f"{path} is missing")
        if file_digest(path) != expected:
            raise ModelError(f"{path} is damaged (its size or checksum differs from {LITERT_MANIFEST})")
    return manifest


def load_classifier(directory: Path) -> LiteRTClassifier:
    """Load the LiteRT classifier described by ``directory/litert.json`` (an ``assets.extra`` dir)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        ngram_file = manifest.get("ngram_vocabulary")
        tokenizer = fast_tokenizer.Tokenizer(
            fast_tokenizer.load_vocabulary(directory / manifest["vocabulary"]),
            int(manifest["max_len"]),
            manifest["truncate"],
            fast_tokenizer.load_vocabulary(directory / ngram_file) if ngram_file else None,
        )
        wide = load_wide_branch(directory / manifest["wide"]) if manifest.get("wide") else None
    except (KeyError, ValueError, OSError) as e:
        raise ModelError(f"cannot load LiteRT model {directory}: {first_line(e)}") from e
    if (wide is None) != (ngram_file is None):
        raise ModelError(f"cannot load LiteRT model {directory}: a wide branch needs both its n-gram vocabulary and {WIDE_FILE}")
    return LiteRTClassifier(directory / manifest["model"], tokenizer, wide)


class LiteRTPredictor:
    """An exported model's LiteRT twin, with the same face as ``prediction.Predictor``."""

    engine = ENGINE

    def __init__(self, path: Path):
        self.path = Path(path)
        if not has_litert(self.path):
            raise ModelError(f"{self.path} has no LiteRT model ({LITERT_DIR}/{LITERT_MANIFEST}); "
                             f"add one with: python export_model.py --add-litert {self.path}")
        meta = self.path / METADATA_FILE
        self.metadata = read_json(meta) if meta.exists() else {}
        # Which end of a long review the model reads: the same rule as the SavedModel engine's.
        self.keeps_tail = self.metadata.get("config", {}).get("truncate") == "tail"
        self.classifier = load_classifier(self.path / LITERT_DIR)
        # The SavedModel's signature applies these in its graph; here they are applied as it does.
        calibrated = self.metadata.get("calibration") or calibration.IDENTITY
        self.temperature, self.threshold = float(calibrated["temperature"]), float(calibrated["threshold"])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return the calibrated P(positive) float32 [n] for raw review strings."""
        return calibration.apply_temperature(self.classifier.probabilities(texts), self.temperature)
