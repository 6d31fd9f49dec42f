"""Review text → token ids in pure Python, exactly as the in-graph preprocessing makes them.

``sentiment.preprocessing`` standardizes and vectorizes inside the model with TensorFlow
ops. This module repeats every step with the same semantics, so the LiteRT engine can
classify a review without importing TensorFlow (a 3 s import). Where TensorFlow differs
from Python's defaults:

* ``tf.strings.lower`` (ICU) reads a review only up to its first NUL character, and its
  case tables are older than Python's (``unicode_tables``, generated from TensorFlow);
* RE2's ``\\s`` is ASCII whitespace without ``\\v`` (Python's is Unicode whitespace), its
  ``\\p{L}``/``\\p{N}`` follow RE2's Unicode tables (also in ``unicode_tables``), and its
  ``$`` is the end of the text (Python's also matches before a final newline).

tests/test_fast_tokenizer.py compares every code point, awkward reviews and (with
SENTIMENT_PARITY_CSV) a whole CSV of real reviews against TensorFlow.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from pathlib import Path

import numpy as np

from sentiment.serving import unicode_tables

PAD, OOV = 0, 1  # ids of padding and out-of-vocabulary tokens, as TextVectorization numbers them
SPACE = "\t\n\f\r "  # RE2's \s
KEPT_ASCII = SPACE + "!?'"  # the non-letters standardize keeps

_APOSTROPHES = re.compile("[’‘`´]")
_LINE_BREAKS = re.compile(f"<br[{SPACE}]*/?>")
_TAGS = re.compile("<[^>]*>")
_MARKS = re.compile("([!?])")
_QUOTES = re.compile(f"(?:^|[{SPACE}])'+|'+(?:[{SPACE}]|\\Z)")
_SPACES = re.compile(f"[{SPACE}]+")


def parse_ranges(text: str) -> tuple[list[int], list[int]]:
    """Return the first and last code points of each ``first-last`` hex range in ``text``."""
    pairs = [tuple(int(x, 16) for x in item.split("-")) for item in text.split()]
    return [a for a, _ in pairs], [b for _, b in pairs]


def parse_lower_runs(text: str, special: dict[int, str]) -> dict[int, str]:
    """Return TensorFlow's lower-casing as a code point → string table, from ``first:count:step:delta`` runs."""
    table = dict(special)
    for item in text.split():
        first, count, step, delta = item.split(":")
        for code in range(int(first, 16), int(first, 16) + int(count) * int(step), int(step)):
            table[code] = chr(code + int(delta))
    return table


class _RangeSet(dict):
    """Membership in inclusive code point ranges (``first-last`` hex), remembered per character."""

    def __init__(self, ranges: str):
        super().__init__()
        self.first, self.last = parse_ranges(ranges)

    def __missing__(self, char: str) -> bool:
        index = bisect.bisect_right(self.first, ord(char)) - 1
        self[char] = index >= 0 and ord(char) <= self.last[index]
        return self[char]


class _LowerTable(dict):
    """str.translate table of TensorFlow's lower-casing; characters it leaves alone map to themselves."""

    def __missing__(self, code: int) -> int:
        self[code] = code
        return code


class _WordTable(dict):
    """str.translate table: letters, numbers and KEPT_ASCII stay, every other character becomes a space."""

    def __missing__(self, code: int) -> int | str:
        self[code] = code if chr(code) in KEPT_ASCII or _LETTERS_AND_NUMBERS[chr(code)] else " "
        return self[code]


_LETTERS_AND_NUMBERS = _RangeSet(unicode_tables.WORD_RANGES)
_CASE_IGNORABLE = _RangeSet(unicode_tables.CASE_IGNORABLE_RANGES)
_CASED = _RangeSet(unicode_tables.CASED_RANGES)
_LOWER = _LowerTable(parse_lower_runs(unicode_tables.LOWER_RUNS, unicode_tables.LOWER_SPECIAL))
_WORDS = _WordTable()


def is_final_sigma(text: str, i: int) -> bool:
    """Return True if the Σ at ``text[i]`` ends a word: ICU's Final_Sigma rule, with ICU's character classes."""
    before = i - 1
    while before >= 0 and _CASE_IGNORABLE[text[before]]:
        before -= 1
    if before < 0 or not _CASED[text[before]]:
        return False
    after = i + 1
    while after < len(text) and _CASE_IGNORABLE[text[after]]:
        after += 1
    return after == len(text) or not _CASED[text[after]]


def lower(text: str) -> str:
    """Lower-case as ``tf.strings.lower(text, encoding="utf-8")`` does (ICU; stops at a NUL)."""
    text = text.partition("\x00")[0]
    if text.isascii():
        return text.lower()
    if "Σ" not in text:
        return text.translate(_LOWER)
    parts, out, position = text.split("Σ"), [], 0  # Σ is the one mapping that depends on its neighbours
    for part in parts[:-1]:
        position += len(part)
        out += [part.translate(_LOWER), "ς" if is_final_sigma(text, position) else "σ"]
        position += 1
    return "".join(out) + parts[-1].translate(_LOWER)


def standardize(text: str) -> str:
    """Return ``sentiment.preprocessing.standardize`` of one review, computed without TensorFlow."""
    text = lower(text)
    text = _APOSTROPHES.sub("'", text)
    text = _LINE_BREAKS.sub(" ", text)
    text = _TAGS.sub(" ", text)
    text = _MARKS.sub(r" \1 ", text)
    text = text.translate(_WORDS)
    text = _QUOTES.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return text.strip(SPACE)


def tokenize(text: str) -> list[str]:
    """Return the review's tokens as TextVectorization(split="whitespace") sees them."""
    cleaned = standardize(text)
    return cleaned.split(" ") if cleaned else []


def ngrams(tokens: list[str]) -> list[str]:
    """Return all 1-grams, then all 2-grams joined by a space (``tf.strings.ngrams(ngram_width=(1, 2))``)."""
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def lookup(tokens: list[str], index: dict[str, int]) -> np.ndarray:
    """Return the ids of ``tokens`` (int32 [n]); unknown tokens get OOV."""
    return np.fromiter((index.get(t, OOV) for t in tokens), dtype=np.int32, count=len(tokens))


def truncate(ids: np.ndarray, max_len: int, keep: str) -> np.ndarray:
    """Keep the first (``head``) or last (``tail``) ``max_len`` ids, as TruncateTokens does."""
    return ids[:max_len] if keep == "head" else ids[-max_len:]


def load_vocabulary(path: Path) -> list[str]:
    """Read a vocabulary written by ``preprocessing.save_vocabulary``, with "" and [UNK] put back in front."""
    text = Path(path).read_text(encoding="utf-8")
    return ["", "[UNK]"] + (text.split("\n") if text else [])


def make_index(vocabulary: list[str]) -> dict[str, int]:
    """Return token → id for a vocabulary whose first entries are padding and OOV."""
    return dict(zip(vocabulary[OOV + 1 :], range(OOV + 1, len(vocabulary))))


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One review as the classifier's inputs: truncated token ids, and the wide branch's n-gram ids."""

    token_ids: np.ndarray  # int32 [<= max_len]
    ngram_ids: np.ndarray | None  # int32 [n], all 1-2-grams of the whole review; None without a wide branch


class Tokenizer:
    """The preprocessing layer of one model: vocabulary, truncation and (wide models) n-gram vocabulary."""

    def __init__(self, vocabulary: list[str], max_len: int, truncate: str, ngram_vocabulary: list[str] | None = None):
        self.index = make_index(vocabulary)
        self.ngram_index = make_index(ngram_vocabulary) if ngram_vocabulary is not None else None
        self.max_len, self.truncate = max_len, truncate

    def encode(self, text: str) -> Encoded:
        """Return the review's token ids (and n-gram ids), exactly as the in-graph preprocessor."""
        tokens = tokenize(text)
        token_ids = truncate(lookup(tokens, self.index), self.max_len, self.truncate)
        ngram_ids = lookup(ngrams(tokens), self.ngram_index) if self.ngram_index is not None else None
        return Encoded(token_ids, ngram_ids)
