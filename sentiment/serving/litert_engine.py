"""Classifying reviews with the LiteRT twin of an exported model, without importing TensorFlow.

``sentiment.export.savedmodel`` writes, beside the SavedModel in ``<version>/assets.extra/``:

    classifier.tflite      the recurrent branch on token ids: int32 [batch, time] → P(positive), or for a
                           wide model its deep logit [batch, 1]: any batch and time when rebuilt by
                           ``export.plain_branch`` (LSTM, SimpleRNN); when Keras converted it, a batch
                           fixed at conversion (1 in exports made before batching), with
                           classifier_single.tflite beside it for one review; absent for the
                           n-gram-only model (``wide``), whose manifest has format 2 and "model": null
    vocabulary.txt         the token vocabulary (as ``preprocessing.save_vocabulary`` writes it)
    ngram_index.npz        wide models: the 1-2-gram vocabulary as word-integer arrays (fast_tokenizer.WordIds);
                           exports made before it have ngram_vocabulary.txt instead
    wide.npz               wide models: float32 ``idf``, ``kernel`` and scalars ``bias``, ``scale``
    litert.json            the manifest: file sizes and checksums, max_len, truncation, and the
                           largest difference from the SavedModel measured at export; written last

Reviews are tokenized by ``fast_tokenizer`` (the in-graph preprocessing, in Python), sorted by
length and run in batches, each padded to its longest review, so little is padding; a
wide model's TF-IDF logit is computed here in NumPy. Only NumPy and ``ai_edge_litert`` load, so a
process classifies one review in a fraction of the SavedModel's start-up time (the n-gram-only
model needs only NumPy).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from sentiment.artifacts import LITERT_DIR, LITERT_MANIFEST, METADATA_FILE
from sentiment.config import TRUNCATIONS
from sentiment.data import fast_tokenizer
from sentiment.errors import ModelError, SentimentError, first_line
from sentiment.evaluation import calibration
from sentiment.quiet import native_stderr_silenced
from sentiment.serving import export_metadata, model_files

if TYPE_CHECKING:
    import multiprocessing.pool

ENGINE = "litert"
PACKAGE = "ai-edge-litert==2.3.0"  # as pinned in requirements.txt
MANIFEST_FORMAT = 1  # a twin with a LiteRT model; NUMPY_ONLY_FORMAT: the n-gram-only model's, tokenizer and NumPy alone
NUMPY_ONLY_FORMAT = 2  # new, so older readers refuse it (and fall back to the SavedModel) instead of opening "model": null
MODEL_FILE = "classifier.tflite"
SINGLE_FILE = "classifier_single.tflite"  # Keras-converted twins: the branch for one review a call (the plain loop's one model takes any rows)
BATCH = 64  # reviews per call of a large input, for a model whose rows are free
BATCH_TOKENS = 64 * 256  # and at most this many padded tokens a call (measured: lstm/3, 64 rows of 800 tokens, 236 MB)
GROUP_SPREAD = 1.25  # a model of free rows runs a few reviews together when the longest is at most this times the shortest
# (the manifest's "group_spread"; twins made before it: this). None: a few reviews run as one call, padded to the longest
# (a branch cheap per row, whose calls cost more than their padding: wide_lstm/6's 4 / 16 reviews 1.65 / 5.02 ms in one call,
# 2.71 / 6.46 ms grouped)
SINGLE_MAX = 32  # calls of at most this many reviews: grouped by length (free rows), or one at a time (SINGLE_FILE)
LENGTH_STEP = 16  # a single review is padded to a multiple of this many tokens: fewer re-planned lengths, the mask makes it exact
VOCABULARY_FILE = "vocabulary.txt"
NGRAM_VOCABULARY_FILE = "ngram_vocabulary.txt"  # wide models exported before NGRAM_INDEX_FILE
NGRAM_INDEX_FILE = "ngram_index.npz"  # wide models: fast_tokenizer.WordIds of the token and 1-2-gram vocabularies
WIDE_FILE = "wide.npz"
TOLERANCE = 1e-4  # largest |P(LiteRT) - P(SavedModel)| an export accepts
MAX_LEN = 100_000  # the largest max_len a manifest may give (as Config allows)
FILE_KEYS = ("model", "single", "vocabulary", "ngram_index", "ngram_vocabulary", "wide")  # manifest fields that name one of its files


def litert_installed() -> bool:
    """Return True if the ``ai_edge_litert`` package can be imported (without importing it)."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def has_litert(path: Path) -> bool:
    """Return True if the exported version dir ``path`` carries a complete LiteRT model (its manifest)."""
    return (Path(path) / LITERT_DIR / LITERT_MANIFEST).is_file()


def needs_interpreter(path: Path) -> bool:
    """Return False only for a twin that has no LiteRT model to run (the n-gram-only model's): it needs no ai-edge-litert."""
    try:
        return model_files.read_object(Path(path) / LITERT_DIR / LITERT_MANIFEST).get("model") is not None
    except (ModelError, OSError):  # missing or unreadable: let loading it say why
        return True


@dataclasses.dataclass(frozen=True)
class WideBranch:
    """The linear TF-IDF branch of a wide model: NgramTfIdf then Dense ``wide_logit``, in NumPy."""

    idf: np.ndarray  # float32 [ngram_vocab_size]; idf[0] (padding) is 0
    kernel: np.ndarray  # float32 [ngram_vocab_size]
    bias: float
    scale: float

    def logits(self, ngram_ids: list[np.ndarray]) -> np.ndarray:
        """Return each review's wide logit, float64 [n], from its n-gram ids: sublinear tf × idf, L2-normalized, scaled, dotted.

        The n-grams of all reviews are counted at once (one ``np.unique`` over review-and-id keys).
        """
        if not ngram_ids:
            return np.zeros(0, np.float64)
        size = len(self.idf)
        review = np.repeat(np.arange(len(ngram_ids), dtype=np.int64), [len(ids) for ids in ngram_ids])
        keys, counts = np.unique(review * size + np.concatenate(ngram_ids).astype(np.int64), return_counts=True)
        owner, ids = keys // size, keys % size
        weights = (1.0 + np.log(counts)) * self.idf[ids].astype(np.float64)
        norms = np.sqrt(np.maximum(np.bincount(owner, weights * weights, minlength=len(ngram_ids)), 1e-12))  # tf.math.l2_normalize's epsilon
        dots = np.bincount(owner, weights * self.kernel[ids].astype(np.float64), minlength=len(ngram_ids))
        return self.scale * dots / norms + self.bias


def load_wide_branch(path: Path) -> WideBranch:
    """Read ``wide.npz`` (plain float32 arrays, no pickles): ``idf`` and ``kernel`` finite vectors of one length, ``bias`` and ``scale`` finite scalars."""
    model_files.check_npz(path)
    with np.load(path, allow_pickle=False) as arrays:
        idf, kernel, bias, scale = (arrays[name] for name in ("idf", "kernel", "bias", "scale"))
    found = (idf, kernel, bias, scale)
    if not (all(a.dtype.kind in "fiu" and np.isfinite(a).all() for a in found) and idf.ndim == kernel.ndim == 1
            and len(idf) == len(kernel) > fast_tokenizer.OOV and bias.shape == scale.shape == ()):
        shapes = ", ".join(f"{name} {a.dtype}{list(a.shape)}" for name, a in zip(("idf", "kernel", "bias", "scale"), found))
        raise ModelError(f"{path} is refused: idf and kernel must be finite vectors of one length and bias and scale finite numbers, "
                         f"not {shapes}")
    idf = idf.astype(np.float32)
    idf[0] = 0.0  # padding never counts, as in NgramTfIdf
    return WideBranch(idf, kernel.astype(np.float32), float(bias), float(scale))


def check_ids(words: fast_tokenizer.WordIds, vocabulary_size: int, ngram_count: int, directory: Path) -> None:
    """Raise a ModelError unless the n-gram index gives token ids within the vocabulary and n-gram ids within the wide branch, its pairs sorted."""
    for name, ids, size in (("token_ids", words.token_ids, vocabulary_size), ("unigram_ids", words.unigram_ids, ngram_count),
                            ("pair_ids", words.pair_ids, ngram_count)):
        if ids.dtype.kind not in "iu" or (len(ids) and not 0 <= int(ids.min()) <= int(ids.max()) < size):
            raise ModelError(f"cannot load LiteRT model {directory}: the n-gram index's {name} are not whole numbers in [0, {size})")
    if words.pair_keys.dtype.kind not in "iu" or np.any(np.diff(words.pair_keys) < 0):
        raise ModelError(f"cannot load LiteRT model {directory}: the n-gram index's pair_keys are not sorted whole numbers")


class BranchInterpreter:
    """One converted recurrent branch: token ids int32 [rows, time] → one output per row, the input re-planned only when its shape changes."""

    def __init__(self, model_path: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            # One thread: measured, a second one gained at most ~15% on batches and lost on single reviews;
            # the XNNPACK delegate stays on (about 2x faster).
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=1)
            input_detail, output_detail = self._interpreter.get_input_details(), self._interpreter.get_output_details()
            shape = list(input_detail[0]["shape_signature"]) if len(input_detail) == 1 else []
            if len(input_detail) != 1 or len(output_detail) != 1 or len(shape) != 2 or shape[0] == 0 or shape[0] < -1 or shape[1] != -1:
                raise ValueError(f"expected one input int32 [batch, time] and one output, got {input_detail} → {output_detail}")
            # Rows per call: fixed when Keras converted the model, None for any number (the plain loop).
            self.rows = int(shape[0]) if shape[0] > 0 else None
            self._input, self._output = input_detail[0]["index"], output_detail[0]["index"]
            self._shape = (0, 0)
            with native_stderr_silenced():
                self._resize(self.rows or 1, 1)
        except (ValueError, RuntimeError) as e:  # not a flatbuffer, truncated, wrong signature
            raise ModelError(f"cannot load LiteRT model {model_path}: {first_line(e)}") from e

    def _resize(self, rows: int, length: int) -> None:
        """Give the input ``rows`` × ``length`` (re-planning memory only when that changes)."""
        if (rows, length) != self._shape:
            self._interpreter.resize_tensor_input(self._input, [rows, length])
            self._interpreter.allocate_tensors()
            self._shape = (rows, length)

    def run(self, ids: np.ndarray) -> np.ndarray:
        """Outputs float [rows] of token ids int32 [rows, time] (``self.rows`` rows when fixed)."""
        self._resize(*ids.shape)
        self._interpreter.set_tensor(self._input, ids)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).reshape(-1)


class LiteRTClassifier:
    """Raw reviews → P(positive) with a LiteRT recurrent branch, the Python tokenizer and (wide models) NumPy."""

    def __init__(self, model_path: Path | None, tokenizer: fast_tokenizer.Tokenizer, wide: WideBranch | None,
                 single_path: Path | None = None, group_spread: float | None = GROUP_SPREAD):
        self.tokenizer, self.wide, self.group_spread = tokenizer, wide, group_spread
        self._batched = self._single = None
        if model_path is None:  # the n-gram-only model: no recurrent branch to run
            return
        if not litert_installed():
            raise SentimentError(f"the LiteRT engine needs the ai-edge-litert package: pip install {PACKAGE}")
        self._batched = BranchInterpreter(model_path)
        self.batch = self._batched.rows or BATCH
        if single_path is not None:
            # Its own interpreter even when it is the same file: each keeps the plan of its usual shape.
            self._single = BranchInterpreter(single_path)
            if self._single.rows not in (1, None):
                raise ModelError(f"cannot load LiteRT model {single_path}: expected one row a call, not {self._single.rows}")

    def branch_outputs(self, token_ids: list[np.ndarray]) -> np.ndarray:
        """Run the recurrent branch on reviews' token ids: float64 [n], in their order.

        A few reviews (at most ``SINGLE_MAX``): with a model of free rows, those of similar length together
        (``grouped_outputs``); with Keras' fixed-row twin, one at a time through its single-review model, each padded
        with 0 to a multiple of ``LENGTH_STEP`` tokens. More go longest first, ``batch`` at a time (free rows: and
        at most ``BATCH_TOKENS`` padded tokens), each batch padded to its longest review (fixed rows: a short last
        batch filled with padding rows, whose outputs are dropped). Longest first, the interpreter's memory is
        planned once at its largest: shortest first, it grew at every call (measured: a process's first pass over
        4,964 reviews took ~1.5 s longer, a third of the loop's arithmetic, in fresh pages).
        A review without tokens is all padding (one step), as in a SavedModel batch; the mask makes padding exact.
        """
        outputs = np.zeros(len(token_ids), np.float64)
        if self._batched is None:  # no recurrent branch: the wide logit is the whole logit
            return outputs
        if self._single is not None and self._single.rows is None and len(token_ids) <= SINGLE_MAX:
            return self.grouped_outputs(token_ids)
        if self._single is not None and len(token_ids) <= SINGLE_MAX:
            for i, ids in enumerate(token_ids):
                outputs[i] = self._single.run(padded(token_ids, [i], 1, step_multiple(len(ids))))[0]
            return outputs
        lengths = np.array([max(len(ids), 1) for ids in token_ids])
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            rows = order[start : start + self.batch]
            longest = int(lengths[rows[0]])
            if self._batched.rows is None:  # free rows: at most BATCH_TOKENS padded tokens a call (the loop's input products are held whole)
                rows = rows[: max(1, BATCH_TOKENS // longest)]
            start += len(rows)
            batch = padded(token_ids, rows, self._batched.rows or len(rows), longest)
            outputs[rows] = self._batched.run(batch)[: len(rows)]
        return outputs

    def grouped_outputs(self, token_ids: list[np.ndarray]) -> np.ndarray:
        """Run a few reviews through a model of free rows: those of similar length together, float64 [n] in their order.

        In length order, a group takes reviews up to ``group_spread`` times its shortest one's length (None: all of them), padded
        to a multiple of ``LENGTH_STEP`` tokens: one call for what comes in together (a server's batch), with little padding.
        """
        outputs = np.zeros(len(token_ids), np.float64)
        lengths = np.array([max(len(ids), 1) for ids in token_ids])
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            limit = lengths[order[start]] * self.group_spread if self.group_spread else np.inf
            end = start + int(np.searchsorted(lengths[order[start:]], limit, side="right"))
            rows = order[start:end]
            outputs[rows] = self._single.run(padded(token_ids, rows, len(rows), step_multiple(int(lengths[rows[-1]]))))
            start = end
        return outputs

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) float32 [n] of raw reviews."""
        encoded = self.tokenizer.encode_many(texts)
        outputs = self.branch_outputs([e.token_ids for e in encoded])
        if self.wide is None:
            return outputs.astype(np.float32)
        logits = outputs + self.wide.logits([e.ngram_ids for e in encoded])
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def step_multiple(length: int) -> int:
    """``length`` (at least 1) rounded up to a multiple of LENGTH_STEP: fewer input shapes to plan for."""
    return -(-max(length, 1) // LENGTH_STEP) * LENGTH_STEP


def padded(token_ids: list[np.ndarray], rows: Sequence[int], height: int, width: int) -> np.ndarray:
    """Token ids int32 [height, width]: the reviews ``rows`` in order, each padded with 0 at its end; rows past them all padding."""
    batch = np.zeros((height, width), np.int32)
    for row, i in enumerate(rows):
        batch[row, : len(token_ids[i])] = token_ids[i]
    return batch


def read_manifest(directory: Path) -> dict:
    """Read ``litert.json`` of an ``assets.extra`` dir, check its fields, and check every file it lists is inside the dir, there and whole."""
    path = directory / LITERT_MANIFEST
    manifest = model_files.read_object(path)
    if manifest.get("format") not in (MANIFEST_FORMAT, NUMPY_ONLY_FORMAT):
        raise ModelError(f"{path} is not a LiteRT manifest of format {MANIFEST_FORMAT} or {NUMPY_ONLY_FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelError(f"{path}: \"files\" must be a JSON object of file names and checksums, not {type(files).__name__}")
    check_fields(manifest, path)
    for name, expected in files.items():
        file = model_files.inside(directory, name, f"a file {LITERT_MANIFEST} lists")
        if not file.is_file():
            raise ModelError(f"{file} is missing")
        if model_files.remembered_digest(file) != expected:
            raise ModelError(f"{file} is damaged (its size or checksum differs from {LITERT_MANIFEST})")
    return manifest


def check_fields(manifest: dict, path: Path) -> None:
    """Raise a ModelError unless the manifest's file fields name listed files and max_len and truncate are valid."""
    for key in FILE_KEYS:
        value = manifest.get(key)
        if (value is not None or key == "vocabulary") and (not isinstance(value, str) or value not in manifest["files"]):
            raise ModelError(f"{path}: {key!r} must name one of the files it lists, not {value!r}")
    max_len = manifest.get("max_len")
    if not calibration.is_number(max_len) or not isinstance(max_len, int) or not 1 <= max_len <= MAX_LEN:
        raise ModelError(f"{path}: max_len {max_len!r} is invalid: it must be a whole number in [1, {MAX_LEN}]")
    spread = manifest.get("group_spread", GROUP_SPREAD)
    if spread is not None and not (calibration.is_number(spread) and 1 <= spread <= 1e6):
        raise ModelError(f"{path}: group_spread {spread!r} is invalid: it must be null or a number in [1, 1000000]")
    if manifest.get("truncate") not in TRUNCATIONS:
        raise ModelError(f"{path}: truncate {manifest.get('truncate')!r} is invalid: it must be {' or '.join(TRUNCATIONS)}")


def load_classifier(directory: Path) -> LiteRTClassifier:
    """Load the LiteRT classifier described by ``directory/litert.json`` (an ``assets.extra`` dir)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        # A wide model's n-grams: a stored index, or (exports before it) the n-gram vocabulary to index now.
        index_file, ngram_file = manifest.get("ngram_index"), manifest.get("ngram_vocabulary")
        # With a stored n-gram index the token ids come from it: the vocabulary is only counted.
        vocabulary = None if index_file else fast_tokenizer.load_vocabulary(directory / manifest["vocabulary"])
        vocabulary_size = fast_tokenizer.vocabulary_size(directory / manifest["vocabulary"]) if index_file else len(vocabulary)
        tokenizer = fast_tokenizer.Tokenizer(
            vocabulary,
            manifest["max_len"],
            manifest["truncate"],
            fast_tokenizer.load_vocabulary(directory / ngram_file) if ngram_file and not index_file else None,
            load_word_ids(directory / index_file) if index_file else None,
        )
        wide = load_wide_branch(directory / manifest["wide"]) if manifest.get("wide") else None
    except (KeyError, ValueError, OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot load LiteRT model {directory}: {first_line(e)}") from e
    if (wide is None) != (tokenizer.words is None):
        raise ModelError(f"cannot load LiteRT model {directory}: a wide branch needs both its n-grams and {WIDE_FILE}")
    if wide is not None:
        check_ids(tokenizer.words, vocabulary_size, len(wide.idf), directory)
    model = manifest.get("model")  # None for the n-gram-only model
    if not model and wide is None:
        raise ModelError(f"cannot load LiteRT model {directory}: it has neither a recurrent nor a wide branch")
    single = manifest.get("single")  # twins made before it have none: every call goes through the batched model
    return LiteRTClassifier(directory / model if model else None, tokenizer, wide, directory / single if model and single else None,
                            manifest.get("group_spread", GROUP_SPREAD))


def load_word_ids(path: Path) -> fast_tokenizer.WordIds:
    """Read an n-gram index, its arrays' declared sizes bounded first."""
    model_files.check_npz(path)
    return fast_tokenizer.WordIds.load(path)


class LiteRTPredictor:
    """An exported model's LiteRT twin, with the same face as ``prediction.Predictor``.

    Large inputs use every core: once ``PARALLEL_MIN`` reviews arrive in one call, the process forks
    ``workers`` copies of itself (the loaded model is shared copy-on-write, nothing is loaded twice)
    and each scores a share of every call; the tokenizer, pure Python, would otherwise keep one core
    busy while the other idles.
    """

    engine = ENGINE

    def __init__(self, path: Path, workers: int | None = None, trust_model: bool = False):
        self.path = Path(path)
        if not has_litert(self.path):
            raise ModelError(f"{self.path} has no LiteRT model ({LITERT_DIR}/{LITERT_MANIFEST}); "
                             f"add one with: python export_model.py --add-litert {self.path}")
        # The files this engine reads, against the export's checksums: litert.json lists the rest with their own.
        model_files.verify_files(self.path, [f for f in (METADATA_FILE, f"{LITERT_DIR}/{LITERT_MANIFEST}") if (self.path / f).exists()], trust_model)
        self.metadata = export_metadata.read_metadata(self.path)
        # Which end of a long review the model reads: the same rule as the SavedModel engine's.
        self.keeps_tail = export_metadata.keeps_tail(self.metadata)
        self.classifier = load_classifier(self.path / LITERT_DIR)
        if self.classifier.tokenizer.truncate != ("tail" if self.keeps_tail else "head"):
            raise ModelError(f"{self.path}: {LITERT_MANIFEST} and {METADATA_FILE} disagree on which end of a long review the model reads")
        # The SavedModel's signature applies these in its graph; here they are applied as it does, read from the same checked place.
        self.temperature, self.threshold = export_metadata.calibration_of(self.metadata, self.path)
        self.workers = max(1, workers if workers is not None else len(os.sched_getaffinity(0)))
        self._pool = None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return the calibrated P(positive) float32 [n] for raw review strings."""
        return self.submit(texts)()

    def submit(self, texts: list[str]) -> Callable[[], np.ndarray]:
        """Start scoring reviews (in the worker processes, for a large call); return what waits for the calibrated P(positive)."""
        if self.workers > 1 and len(texts) >= PARALLEL_MIN:
            # Parts of reviews of similar length (characters stand in for tokens), so the batches a worker makes pad little;
            # longest first, one at a time: each worker plans its memory once, and the last parts to share are the shortest.
            order = np.argsort([-len(t) for t in texts], kind="stable")
            parts = [[texts[i] for i in order[start : start + PARALLEL_PART]] for start in range(0, len(texts), PARALLEL_PART)]
            pending = self._worker_pool().map_async(score_in_worker, parts, chunksize=1)

            def wait() -> np.ndarray:
                raw = np.empty(len(texts), np.float32)
                raw[order] = np.concatenate(pending.get())
                return calibration.apply_temperature(raw, self.temperature)

            return wait
        probabilities = calibration.apply_temperature(self.classifier.probabilities(texts), self.temperature)
        return lambda: probabilities

    def _worker_pool(self) -> multiprocessing.pool.Pool:
        """Fork the worker processes, once; they inherit the loaded classifier."""
        if self._pool is None:
            global _WORKER_CLASSIFIER
            _WORKER_CLASSIFIER = self.classifier
            # Ctrl-C is the parent's to handle (one "interrupted" line; it stops the workers): they ignore it.
            import multiprocessing  # only for a large input: a one-review start does not pay for it (~30 ms)

            self._pool = multiprocessing.get_context("fork").Pool(self.workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


# Reviews in one call from which the work is shared between processes, and the share each takes at a time.
PARALLEL_MIN, PARALLEL_PART = 256, 128
_WORKER_CLASSIFIER: LiteRTClassifier | None = None  # in a forked worker: the parent's classifier


def score_in_worker(texts: list[str]) -> np.ndarray:
    """Score reviews in a worker process with the classifier it inherited (uncalibrated P(positive))."""
    return _WORKER_CLASSIFIER.probabilities(texts)
