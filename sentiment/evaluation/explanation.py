"""Why a model labelled a review: the words and phrases whose deletion moves its prediction most (occlusion).

Each word, and each pair of adjacent words, is deleted in turn from the review as the model
reads it (its tokens after standardization), the shortened reviews are scored, and a phrase's
weight is how far its deletion moves the logit of P(positive): positive weights pushed the
review towards ``positive``. This is the deletion test itself, so it is faithful by construction
(tests/evaluation/test_explanation.py checks it against deleting random words); it needs only a scorer of
raw texts, so it runs through every engine, LiteRT's included, and for wide-and-deep models it
covers both branches at once (deleting a word removes its n-grams too). A pair is reported in
place of its words only when deleting both is far from the sum of deleting each (``not good``).
Pure NumPy: no TensorFlow, so ``predict.py --explain`` keeps its fast start.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable, Iterator

import numpy as np

from sentiment.evaluation.calibration import to_logits

Scorer = Callable[[list[str]], np.ndarray]  # raw reviews → P(positive) float32 [n]
INTERACTION = 0.5  # a pair replaces its words when its deletion differs from theirs by this share of their weights
# Bounded work per review: a review of n words costs 2n shortened copies of n words each, so a long one is explained on
# MAX_WORDS of its words (the end its model reads), scored SCORE_CHUNK copies at a time, within SECONDS per review.
MAX_WORDS = 400
SECONDS = 10.0
SCORE_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class Reason:
    """A phrase of the review and how far deleting it moves the logit of P(positive) (+: it pushed towards positive)."""

    phrase: str
    weight: float
    start: int  # its first token's position in the review's tokens


def occlusion_variants(tokens: list[str]) -> Iterator[str]:
    """Yield the review, then it without each word [n], then without each adjacent pair [n - 1], as texts to score (lazily)."""
    yield " ".join(tokens)
    yield from (" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens)))
    yield from (" ".join(tokens[:i] + tokens[i + 2 :]) for i in range(len(tokens) - 1))


def variant_count(tokens: list[str]) -> int:
    """Return how many texts ``occlusion_variants`` yields for a review of these tokens (0 for none)."""
    return 2 * len(tokens) if tokens else 0


def cut_words(tokens: list[str], max_words: int, keep_tail: bool) -> tuple[list[str], str | None]:
    """Return at most ``max_words`` of a review's tokens (the end its model reads) and a note when some were cut."""
    if len(tokens) <= max_words:
        return tokens, None
    end = "last" if keep_tail else "first"
    return (tokens[-max_words:] if keep_tail else tokens[:max_words]), f"explained on its {end} {max_words} of {len(tokens):,} words"


def score_within(score: Scorer, texts: Iterator[str], total: int, seconds: float, chunk_size: int = SCORE_CHUNK) -> np.ndarray:
    """Return the logits of ``total`` texts scored ``chunk_size`` at a time; those left when ``seconds`` run out are NaN."""
    logits, deadline, done = np.full(total, np.nan), time.monotonic() + seconds, 0
    while done < total and time.monotonic() < deadline:
        chunk = list(itertools.islice(texts, chunk_size))
        logits[done : done + len(chunk)] = to_logits(np.reshape(score(chunk), -1))
        done += len(chunk)
    return logits


def split_weights(logits: np.ndarray, n: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Turn the logits of one review's variants (occlusion_variants order) into its logit and the drops of its words and pairs."""
    full = logits[0]
    return float(full), full - logits[1 : n + 1], full - logits[n + 1 :]


def top_reasons(tokens: list[str], words: np.ndarray, pairs: np.ndarray, k: int) -> tuple[list[Reason], list[Reason]]:
    """Return the ``k`` strongest reasons towards positive and towards negative, no two sharing a word or repeating a phrase."""
    candidates, paired = [], set()
    for i, w in enumerate(pairs):
        # Deleting the pair is far from deleting each word (``not good``): its words alone would mislead.
        if i not in paired and abs(w - words[i] - words[i + 1]) > INTERACTION * (abs(words[i]) + abs(words[i + 1])):
            candidates.append(Reason(f"{tokens[i]} {tokens[i + 1]}", float(w), i))
            paired |= {i, i + 1}
    candidates += [Reason(token, float(w), i) for i, (token, w) in enumerate(zip(tokens, words)) if i not in paired]
    chosen: dict[bool, list[Reason]] = {True: [], False: []}
    taken: set[int] = set()
    said: set[str] = set()  # a phrase the review repeats is given once, at its strongest
    for reason in sorted(candidates, key=lambda r: -abs(r.weight)):
        span = set(range(reason.start, reason.start + len(reason.phrase.split(" "))))
        side = chosen[reason.weight > 0]
        if reason.weight != 0 and len(side) < k and not span & taken and reason.phrase not in said:
            side.append(reason)
            taken |= span
            said.add(reason.phrase)
    return chosen[True], chosen[False]


def explain(score: Scorer, tokens: list[str], k: int = 5, keep_tail: bool = True, max_words: int = MAX_WORDS, seconds: float = SECONDS) -> dict:
    """Explain one review (its standardized tokens): the logit of the whole, the top ``k`` reasons each way, and a note if the budget cut it."""
    return explain_many(score, [tokens], k, keep_tail, max_words, seconds)[0]


def explain_many(score: Scorer, reviews: list[list[str]], k: int = 5, keep_tail: bool = True, max_words: int = MAX_WORDS,
                 seconds: float = SECONDS, chunk_size: int = SCORE_CHUNK) -> list[dict]:
    """Explain several reviews (their standardized tokens) as ``explain`` does each, their copies scored together.

    Scoring them together keeps a batching scorer's batches full. Each review is cut to ``max_words``
    (``keep_tail``: its last ones) and all get ``seconds`` each; copies left unscored when time runs out
    count as no change, and the review's ``cut`` note says so (``cut`` is None for a whole explanation).
    """
    cuts = [cut_words(tokens, max_words, keep_tail) for tokens in reviews]
    counts = [variant_count(tokens) for tokens, _ in cuts]
    texts = itertools.chain.from_iterable(occlusion_variants(tokens) for tokens, _ in cuts if tokens)
    logits = score_within(score, texts, sum(counts), seconds * max(len(reviews), 1), chunk_size)
    explained, start = [], 0
    for (tokens, note), count in zip(cuts, counts):
        part, start = logits[start : start + count], start + count
        explained.append(explain_part(tokens, part, k, note, seconds))
    return explained


def explain_part(tokens: list[str], logits: np.ndarray, k: int, note: str | None, seconds: float) -> dict:
    """One review's explanation from the logits of its copies (NaN: not scored in time)."""
    if not tokens or np.isnan(logits[0]):
        timed_out = f"the {seconds:g} s budget ran out before it was scored" if tokens else None
        return {"logit": None, "positive": [], "negative": [], "cut": join_notes(note, timed_out)}
    scored = int(np.count_nonzero(~np.isnan(logits)))
    timed_out = f"the {seconds:g} s budget ran out after {scored - 1} of {len(logits) - 1} deletions" if scored < len(logits) else None
    full, words, pairs = split_weights(np.nan_to_num(logits, nan=float(logits[0])), len(tokens))
    towards_positive, towards_negative = top_reasons(tokens, words, pairs, k)
    return {"logit": full, "positive": towards_positive, "negative": towards_negative, "cut": join_notes(note, timed_out)}


def join_notes(*notes: str | None) -> str | None:
    """Join the notes that are there with '; ' (None if none is)."""
    found = [n for n in notes if n]
    return "; ".join(found) if found else None
