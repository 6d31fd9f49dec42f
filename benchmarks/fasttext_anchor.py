"""fastText with bigrams, the optional cheap anchor of the benchmarks (pip install fasttext-wheel; not a product dependency).

Settings: word bigrams, learning rate 0.5, 10 epochs: the best validation accuracy on seed 42's
split of the IMDB CSV among learning rates 0.1, 0.5, 1 and 5, 10, 20 epochs (0.894; 5 epochs at
the default rate 0.1 gave 0.803, far below what fastText can do).
"""

import os
import tempfile

import numpy as np

SETTINGS = {"wordNgrams": 2, "lr": 0.5, "epoch": 10}


def installed() -> bool:
    """Return True if the optional ``fasttext`` package can be imported."""
    try:
        import fasttext  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


def fit(texts: list[str], labels: list[int] | np.ndarray, seed: int = 0) -> object:
    """Train a fastText classifier on standardized ``texts`` with 0/1 ``labels`` (two threads: this machine's cores)."""
    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.writelines(f"__label__{int(y)} {' '.join(t.split())}\n" for t, y in zip(texts, labels))
    try:
        return fasttext.train_supervised(f.name, verbose=0, seed=seed, thread=2, **SETTINGS)
    finally:
        os.unlink(f.name)


def probabilities(model: object, texts: list[str]) -> np.ndarray:
    """Return P(positive) float32 [n] of ``texts``.

    From the top label only: with NumPy 2, fasttext-wheel 0.9.2 returns the first probability
    for every one of k > 1 labels, so P(positive) cannot be read from a k=2 answer.
    """
    labels, probs = model.predict([" ".join(t.split()) for t in texts], k=1)
    positive = np.array([p[0] if l[0] == "__label__1" else 1.0 - p[0] for l, p in zip(labels, probs)], np.float32)
    return np.clip(positive, 0.0, 1.0)  # its softmax can read 1.00001
