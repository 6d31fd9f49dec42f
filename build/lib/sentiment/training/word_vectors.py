"""Skip-gram word vectors (gensim's Word2Vec) learned from review text without labels, as the classifier's first embedding.

The text is the pretraining text of :mod:`sentiment.training.pretraining` (training reviews, the source's
unlabelled reviews and ``--unlabelled``, never a validation or test review), standardized as the
model standardizes. The vectors live in ``<pretrain_dir>/vectors-<hash>/``, the hash being of the
text, the classifier's vocabulary and the settings below, so every seed and model that shares
them reuses one file, and a killed training resumes after its last finished epoch:

    vectors.npy        float32 [vocab_size, embedding_dim]: one row per classifier word (written last: marks it done)
    word_vectors.json  what they were made from, coverage of the vocabulary, cost
    state/             the unfinished training's weights after each epoch (NumPy, no pickles), removed when done
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from sentiment import artifacts
from sentiment.config import Config
from sentiment.data import preprocessing, unlabelled
from sentiment.errors import ModelError
from sentiment.rundir import RunDir

log = logging.getLogger(__name__)

WINDOW, NEGATIVE, MIN_COUNT, SUBSAMPLE = 5, 5, 3, 1e-4  # word2vec's usual skip-gram settings for a corpus of this size
START_ALPHA, END_ALPHA = 0.025, 1e-4  # gensim's defaults, decayed linearly over all epochs as one run would
# One thread: gensim's threads race on the shared vectors (Hogwild), so two threads give different vectors on every
# run, and the classifiers started from them differ too (lstm v2, seed 42: 0.9092, then 0.9012 from new vectors).
WORKERS = 1
# The settings the vectors depend on, besides the text: change one, get new vectors. Their seed is the split's
# (Config.data_seed), so training seeds on one split share them.
VECTOR_SETTINGS = ("embedding_dim", "seed", "word_vector_epochs")


def vector_settings(config: Config) -> dict:
    """Return the settings the vectors are learned with (``seed``: the split's seed)."""
    return {**{k: getattr(config, k) for k in VECTOR_SETTINGS}, "seed": config.data_seed(), "workers": WORKERS}


def vectors_dir(config: Config, digest: str) -> Path:
    """Return the folder of the word vectors with this hash."""
    return Path(config.pretrain_dir).expanduser() / f"vectors-{config.embedding_dim}d-{digest[:16]}"


def content_hash(config: Config, texts: list[str]) -> str:
    """Return the sha256 (hex) of the settings and text the vectors are learned from."""
    digest = hashlib.sha256(json.dumps(vector_settings(config), sort_keys=True).encode())
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8", errors="replace"))
    return digest.hexdigest()


def learn(config: Config, train_texts: list[str], held_out: list[str]) -> dict:
    """Return the record of the word vectors for ``config`` (reused if they exist, else learned resumably).

    ``train_texts`` are the classifier's training reviews; ``held_out`` its validation and test
    reviews, which are never learned from.
    """
    texts = unlabelled.load_unlabelled(config, train_texts, held_out)
    digest = content_hash(config, texts)
    folder = vectors_dir(config, digest)
    if (folder / "vectors.npy").exists():
        log.info("reusing the word vectors %s", folder)
        return read_record(folder)
    with RunDir(folder).lock():
        if not (folder / "vectors.npy").exists():  # another run may have finished them while this one waited
            train_vectors(config, texts, digest, folder)
    return read_record(folder)


def tokenized(texts: list[str]) -> list[list[str]]:
    """Return each text's tokens as the classifier's vectorizer splits them (wordless texts dropped)."""
    return [t.split() for t in preprocessing.standardize_texts(texts) if t]


def train_vectors(config: Config, texts: list[str], digest: str, folder: Path) -> None:
    """Train skip-gram vectors on ``texts`` in ``folder``, one epoch at a time, saving the state after each; write them."""
    from gensim.models import Word2Vec  # only runs that ask for vectors need gensim loaded

    started = time.perf_counter()
    sentences = tokenized(texts)
    model = Word2Vec(vector_size=config.embedding_dim, sg=1, window=WINDOW, negative=NEGATIVE, min_count=MIN_COUNT,
                     sample=SUBSAMPLE, workers=WORKERS, seed=config.data_seed())
    logging.getLogger("gensim").setLevel(max(logging.WARNING, log.getEffectiveLevel()))  # its per-second progress lines drown the run's log
    model.build_vocab(sentences)
    done = restore_state(model, folder / "state")
    total = config.word_vector_epochs
    words = sum(map(len, sentences))
    log.info("learning %d-d word vectors from %d review(s), %d words, %d epoch(s) (%d done before) in %s",
             config.embedding_dim, len(sentences), words, total, done, folder)
    for epoch in range(done, total):
        alpha = lambda e: START_ALPHA - (START_ALPHA - END_ALPHA) * e / total  # noqa: E731  (one linear decay across resumes)
        model.train(sentences, total_examples=len(sentences), epochs=1, start_alpha=alpha(epoch), end_alpha=alpha(epoch + 1))
        save_state(model, folder / "state", epoch + 1)
        log.info("word vectors: epoch %d/%d done", epoch + 1, total)
    record = {
        "hash": digest,
        "settings": vector_settings(config),
        "method": {"library": "gensim", "algorithm": "skip-gram", "window": WINDOW, "negative": NEGATIVE,
                   "min_count": MIN_COUNT, "sample": SUBSAMPLE},
        "source": config.data, "unlabelled": config.unlabelled,
        "reviews": len(sentences), "words": words, "corpus_vocabulary": len(model.wv),
        "seconds_this_session": round(time.perf_counter() - started, 1),
        "versions": artifacts.library_versions(),
    }
    artifacts.write_json(folder / "word_vectors.json", record)
    artifacts.write_text(folder / "words.txt", "".join(f"{w}\n" for w in model.wv.index_to_key))
    artifacts.write_bytes(folder / "vectors.npy", npy_bytes(model.wv.vectors.astype(np.float32)))
    for path in sorted((folder / "state").glob("*.npz")):
        path.unlink()
    log.info("word vectors of %d words saved to %s", len(model.wv), folder)


def embedding_matrix(record: dict, vocabulary: list[str], config: Config) -> np.ndarray:
    """Return the classifier's first embedding, float32 [vocab_size, embedding_dim]: each vocabulary word's learned vector.

    Words the corpus lacks, the padding and out-of-vocabulary rows, and the rows past a vocabulary
    smaller than ``vocab_size`` keep a small random vector, as a fresh Embedding would start.
    """
    folder = Path(record["vectors"])
    try:
        words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")[:-1]
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read the word vectors in {folder}: {e}") from e
    if vectors.shape != (len(words), config.embedding_dim):
        raise ModelError(f"the word vectors in {folder} are {vectors.shape}, not {len(words)} x {config.embedding_dim}")
    index = {w: i for i, w in enumerate(words)}
    rng = np.random.default_rng(config.seed)
    matrix = rng.uniform(-0.05, 0.05, (config.vocab_size, config.embedding_dim)).astype(np.float32)
    rows = [(i, index[w]) for i, w in enumerate(vocabulary) if w in index]
    if rows:
        # Kept at their own scale (~10x a fresh embedding's): Adam's steps do not grow with it, so fine-tuning keeps more of them.
        matrix[[i for i, _ in rows]] = vectors[[j for _, j in rows]]
    log.info("word vectors %s cover %d of the classifier's %d words", folder, len(rows), len(vocabulary))
    return matrix


def save_state(model, folder: Path, epochs_done: int) -> None:
    """Write the training state (input and output vectors) after ``epochs_done`` epochs, atomically."""
    buffer = io.BytesIO()
    # The sampler's random state too: a resumed run then draws what an uninterrupted one would.
    _, keys, position, has_gauss, gauss = model.random.get_state()
    np.savez(buffer, vectors=model.wv.vectors, output=model.syn1neg, epochs=np.int64(epochs_done),
             random_keys=keys, random_position=np.int64(position), random_gauss=np.array([has_gauss, gauss], np.float64))
    artifacts.write_bytes(folder / "state.npz", buffer.getvalue())


def restore_state(model, folder: Path) -> int:
    """Load a saved training state into ``model``; return the epochs it had finished (0 if none or unusable)."""
    path = folder / "state.npz"
    if not path.exists():
        return 0
    try:
        with np.load(path, allow_pickle=False) as data:
            if data["vectors"].shape != model.wv.vectors.shape or data["output"].shape != model.syn1neg.shape:
                raise ValueError("its shapes differ from this vocabulary's")
            model.wv.vectors[:] = data["vectors"]
            model.syn1neg[:] = data["output"]
            has_gauss, gauss = data["random_gauss"]
            model.random.set_state(("MT19937", data["random_keys"], int(data["random_position"]), int(has_gauss), float(gauss)))
            return int(data["epochs"])
    except (OSError, KeyError, ValueError) as e:
        log.warning("ignoring the word vectors' saved state %s (%s): starting over", path, e)
        return 0


def npy_bytes(array: np.ndarray) -> bytes:
    """Return ``array`` as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def read_record(folder: Path) -> dict:
    """Return the vectors' ``word_vectors.json`` with their folder."""
    return {**artifacts.read_json(folder / "word_vectors.json"), "vectors": str(folder)}

