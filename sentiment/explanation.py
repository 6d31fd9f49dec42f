"""Why a model labelled a review: the words and phrases whose deletion moves its prediction most (occlusion).

Each word, and each pair of adjacent words, is deleted in turn from the review as the model
reads it (its tokens after standardization), the shortened reviews are scored, and a phrase's
weight is how far its deletion moves the logit of P(positive): positive weights pushed the
review towards ``positive``. This is the deletion test itself, so it is faithful by construction
(tests/test_explanation.py checks it against deleting random words); it needs only a scorer of
raw texts, so it runs through every engine, LiteRT's included, and for wide-and-deep models it
covers both branches at once (deleting a word removes its n-grams too). A pair is reported in
place of its words only when deleting both is far from the sum of deleting each (``not good``).
Pure NumPy: no TensorFlow, so ``predict.py --explain`` keeps its fast start.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from sentiment.calibration import to_logits

Scorer = Callable[[list[str]], np.ndarray]  # raw reviews → P(positive) float32 [n]
INTERACTION = 0.5  # a pair replaces its words when its deletion differs from theirs by this share of their weights


@dataclasses.dataclass(frozen=True)
class Reason:
    """A phrase of the review and how far deleting it moves the logit of P(positive) (+: it pushed towards positive)."""

    phrase: str
    weight: float
    start: int  # its first token's position in the review's tokens


def occlusion_variants(tokens: list[str]) -> list[str]:
    """Return the review, then it without each word [n], then without each adjacent pair [n - 1], as texts to score."""
    variants = [" ".join(tokens)]
    variants += [" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))]
    variants += [" ".join(tokens[:i] + tokens[i + 2 :]) for i in range(len(tokens) - 1)]
    return variants


def split_weights(logits: np.ndarray, n: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Turn the logits of one review's variants (occlusion_variants order) into its logit and the drops of its words and pairs."""
    full = logits[0]
    return float(full), full - logits[1 : n + 1], full - logits[n + 1 :]


def top_reasons(tokens: list[str], words: np.ndarray, pairs: np.ndarray, k: int) -> tuple[list[Reason], list[Reason]]:
    """Return the ``k`` strongest reasons towards positive and towards negative, no two sharing a word."""
    candidates, paired = [], set()
    for i, w in enumerate(pairs):
        # Deleting the pair is far from deleting each word (``not good``): its words alone would mislead.
        if i not in paired and abs(w - words[i] - words[i + 1]) > INTERACTION * (abs(words[i]) + abs(words[i + 1])):
            candidates.append(Reason(f"{tokens[i]} {tokens[i + 1]}", float(w), i))
            paired |= {i, i + 1}
    candidates += [Reason(token, float(w), i) for i, (token, w) in enumerate(zip(tokens, words)) if i not in paired]
    chosen: dict[bool, list[Reason]] = {True: [], False: []}
    taken: set[int] = set()
    for reason in sorted(candidates, key=lambda r: -abs(r.weight)):
        span = set(range(reason.start, reason.start + len(reason.phrase.split(" "))))
        side = chosen[reason.weight > 0]
        if reason.weight != 0 and len(side) < k and not span & taken:
            side.append(reason)
            taken |= span
    return chosen[True], chosen[False]


def explain(score: Scorer, tokens: list[str], k: int = 5) -> dict:
    """Explain one review (its standardized tokens): the logit of the whole and the top ``k`` reasons each way."""
    return explain_many(score, [tokens], k)[0]


def explain_many(score: Scorer, reviews: list[list[str]], k: int = 5) -> list[dict]:
    """Explain several reviews (their standardized tokens) with one call to ``score``, as ``explain`` does each.

    One call for all their variants keeps a batching scorer's batches full and its pipeline busy;
    the variants of a review take ~1.3 KB each, so callers keep ``reviews`` to dozens.
    """
    variants = [occlusion_variants(tokens) if tokens else [] for tokens in reviews]
    logits = to_logits(np.reshape(score([v for vs in variants for v in vs]), -1)) if any(variants) else np.zeros(0)
    explained, start = [], 0
    for tokens, vs in zip(reviews, variants):
        if not tokens:
            explained.append({"logit": None, "positive": [], "negative": []})
            continue
        full, words, pairs = split_weights(logits[start : start + len(vs)], len(tokens))
        start += len(vs)
        towards_positive, towards_negative = top_reasons(tokens, words, pairs, k)
        explained.append({"logit": full, "positive": towards_positive, "negative": towards_negative})
    return explained
