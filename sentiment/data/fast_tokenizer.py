"""Review text → token ids in pure Python, exactly as the in-graph preprocessing makes them.

``sentiment.data.preprocessing`` standardizes and vectorizes inside the model with TensorFlow
ops. This module repeats every step with the same semantics, so the LiteRT engine can
classify a review without importing TensorFlow (a 3 s import). Where TensorFlow differs
from Python's defaults:

* ``tf.strings.lower`` (ICU) reads a review only up to its first NUL character, and its
  case tables are older than Python's (``unicode_tables``, generated from TensorFlow);
* RE2's ``\\s`` is ASCII whitespace without ``\\v`` (Python's is Unicode whitespace), its
  ``\\p{L}``/``\\p{N}`` follow RE2's Unicode tables (also in ``unicode_tables``), and its
  ``$`` is the end of the text (Python's also matches before a final newline).

tests/data/test_fast_tokenizer.py compares every code point, awkward reviews and (with
SENTIMENT_PARITY_CSV) a whole CSV of real reviews against TensorFlow.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import re
from pathlib import Path

import numpy as np

PAD, OOV = 0, 1  # ids of padding and out-of-vocabulary tokens, as TextVectorization numbers them
SPACE = "\t\n\f\r "  # RE2's \s
KEPT_ASCII = SPACE + "!?'"  # the non-letters standardize keeps

_APOSTROPHES = re.compile("[’‘`´]")
_LINE_BREAKS = re.compile(f"<br[{SPACE}]*/?>")
_TAGS = re.compile("<[^>]*>")
_QUOTES = re.compile(f"(?:^|[{SPACE}])'+|'+(?:[{SPACE}]|\\Z)")
_SPACES = re.compile(f"[{SPACE}]+")
_QUOTE_RUNS = re.compile("'+")
_ASCII_WORD = re.compile("[a-z0-9!?]")  # characters every later step of standardize keeps


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
        char = chr(code)
        # ASCII letters and digits are RE2's \p{L}/\p{N} there (tests/data/test_fast_tokenizer.py): no table needed.
        kept = char in KEPT_ASCII or (char.isalnum() if code < 128 else unicode_table("letters_and_numbers")[char])
        self[code] = code if kept else " "
        return self[code]


@functools.cache
def unicode_table(name: str) -> dict:
    """Return one of the Unicode tables, built the first time a review needs it (most reviews are ASCII: a one-review process skips them)."""
    from sentiment.data import unicode_tables  # ~10 ms of constants to load

    if name == "lower":
        return _LowerTable(parse_lower_runs(unicode_tables.LOWER_RUNS, unicode_tables.LOWER_SPECIAL))
    ranges = {"letters_and_numbers": unicode_tables.WORD_RANGES, "case_ignorable": unicode_tables.CASE_IGNORABLE_RANGES,
              "cased": unicode_tables.CASED_RANGES}
    return _RangeSet(ranges[name])


_WORDS = _WordTable()


def is_final_sigma(text: str, i: int) -> bool:
    """Return True if the Σ at ``text[i]`` ends a word: ICU's Final_Sigma rule, with ICU's character classes."""
    ignorable, cased = unicode_table("case_ignorable"), unicode_table("cased")
    before = i - 1
    while before >= 0 and ignorable[text[before]]:
        before -= 1
    if before < 0 or not cased[text[before]]:
        return False
    after = i + 1
    while after < len(text) and ignorable[text[after]]:
        after += 1
    return after == len(text) or not cased[text[after]]


def lower(text: str) -> str:
    """Lower-case as ``tf.strings.lower(text, encoding="utf-8")`` does (ICU; stops at a NUL)."""
    text = text.partition("\x00")[0]
    if text.isascii():
        return text.lower()
    table = unicode_table("lower")
    if "Σ" not in text:
        return text.translate(table)
    parts, out, position = text.split("Σ"), [], 0  # Σ is the one mapping that depends on its neighbours
    for part in parts[:-1]:
        position += len(part)
        out += [part.translate(table), "ς" if is_final_sigma(text, position) else "σ"]
        position += 1
    return "".join(out) + parts[-1].translate(table)


def standardize(text: str) -> str:
    """Return ``sentiment.data.preprocessing.standardize`` of one review, computed without TensorFlow."""
    return _SPACES.sub(" ", standardize_but_spaces(text)).strip(SPACE)


def standardize_but_spaces(text: str) -> str:
    """``standardize`` up to its last step: runs of whitespace are not yet one space, nor the ends stripped."""
    text = lower(text)
    text = _APOSTROPHES.sub("'", text)
    text = _LINE_BREAKS.sub(" ", text)
    text = _TAGS.sub(" ", text)
    text = text.replace("!", " ! ").replace("?", " ? ")  # the in-graph regex ([!?]) → " \1 ", without a template per mark
    text = text.translate(_WORDS)
    return strip_quotes(text) if "'" in text else text


def strip_quotes(text: str) -> str:
    """``_QUOTES.sub(" ", text)``, found from the quote runs alone (the regex tries every position: ~80 µs a review).

    The regex, scanned left to right, replaces a run of quotes at the very start, or preceded by a
    whitespace character (the character goes too), or followed by one (it goes too) or by the end.
    """
    out, done = [], 0  # done: where the regex's scan has got to (the end of the last match)
    for run in _QUOTE_RUNS.finditer(text):
        start, end = run.span()
        if start - 1 >= done and text[start - 1] in SPACE:  # matched one character earlier, from the space
            start -= 1
        elif start == done == 0:  # "^'+"
            pass
        elif end < len(text) and text[end] in SPACE:
            end += 1
        elif end != len(text):  # inside a word: no match anywhere in this run
            continue
        out += [text[done:start], " "]
        done = end
    return "".join(out) + text[done:]


def tokenize(text: str) -> list[str]:
    """Return the review's tokens as TextVectorization(split="whitespace") sees them."""
    # str.split() splits at any Unicode whitespace, but after translate(_WORDS) the only whitespace left is
    # SPACE's (every other kind became " "), so it equals collapsing runs, stripping and splitting at " ".
    return standardize_but_spaces(text).split()


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


def vocabulary_size(path: Path) -> int:
    """Return the number of entries ``load_vocabulary`` would return, without making the list."""
    text = Path(path).read_text(encoding="utf-8")
    return 2 + (text.count("\n") + 1 if text else 0)


def make_index(vocabulary: list[str]) -> dict[str, int]:
    """Return token → id for a vocabulary whose first entries are padding and OOV."""
    return dict(zip(vocabulary[OOV + 1 :], range(OOV + 1, len(vocabulary))))


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One review as the classifier's inputs: truncated token ids, and the wide branch's n-gram ids."""

    token_ids: np.ndarray  # int32 [<= max_len]
    ngram_ids: np.ndarray | None  # int32 [n], all 1-2-grams of the whole review; None without a wide branch


FEW_TOKENS = 400  # tokens a process looks up one by one before building WordIds.ids: about what building it costs


class WordIds:
    """Every word of a model's vocabularies as one integer, so a review is looked up word by word only once.

    A 1-2-gram id is then found without building the bigram's string: a bigram is the key
    ``first * size + second`` in a sorted array (one ``searchsorted`` per call), and a word's
    token id and unigram id are arrays indexed by its integer. Exports store these arrays
    (``ngram_index.npz``), so loading them takes milliseconds; ``build`` makes them from the vocabularies.
    """

    def __init__(self, words: str, token_ids: np.ndarray, unigram_ids: np.ndarray, pair_keys: np.ndarray, pair_ids: np.ndarray):
        """``words``: every word, one a line (no word holds whitespace); a word's integer is its line's number."""
        self.text = f"\n{words}\n" if words else "\n"  # each word between line breaks: found by str.find
        self.size = words.count("\n") + 2 if words else 1  # the last slot stands for words in neither vocabulary
        self.found_one_by_one = 0  # tokens looked up in ``text`` so far (see lookup)
        self.token_ids, self.unigram_ids, self.pair_keys, self.pair_ids = token_ids, unigram_ids, pair_keys, pair_ids
        if not (len(token_ids) == len(unigram_ids) == self.size and len(pair_keys) == len(pair_ids)):
            raise ValueError("the n-gram index arrays do not fit together")

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        """Word → integer, built when first needed (~10 ms for the default model's 33,000 words)."""
        words = self.text[1:-1].split("\n") if len(self.text) > 1 else []
        return dict(zip(words, range(len(words))))

    @classmethod
    def build(cls, vocabulary: list[str], ngram_vocabulary: list[str]) -> "WordIds":
        """Index the words of a token and a 1-2-gram vocabulary (both with padding and OOV first)."""
        entries = ngram_vocabulary[OOV + 1 :]
        # C-speed passes (str.join/split, dict.fromkeys, NumPy): a Python loop over 200,000 n-grams takes ~0.4 s.
        spoken = " ".join(entries).split(" ") if entries else []  # every entry's words, in order
        words = list(dict.fromkeys(spoken + vocabulary[OOV + 1 :]))
        ids = dict(zip(words, range(len(words))))
        size = len(words) + 1
        word_of = np.fromiter(map(ids.__getitem__, spoken), np.int64, len(spoken))
        widths = np.fromiter(map(str.count, entries, [" "] * len(entries)), np.int64, len(entries)) + 1
        if len(entries) and widths.max() > 2:
            raise ValueError("an n-gram vocabulary entry has more than two words")
        starts = np.cumsum(widths) - widths
        entry_ids = np.arange(OOV + 1, OOV + 1 + len(entries), dtype=np.int32)
        single, pair = widths == 1, widths == 2
        unigram_ids = np.full(size, OOV, np.int32)
        unigram_ids[word_of[starts[single]]] = entry_ids[single]
        keys = word_of[starts[pair]] * size + word_of[starts[pair] + 1]
        order = np.argsort(keys, kind="stable")
        token_ids = np.full(size, OOV, np.int32)
        token_ids[[ids[w] for w in vocabulary[OOV + 1 :]]] = np.arange(OOV + 1, len(vocabulary), dtype=np.int32)
        return cls("\n".join(words), token_ids, unigram_ids, keys[order], entry_ids[pair][order])

    def save(self, path: Path) -> None:
        """Write the index as plain arrays (words as UTF-8 bytes, one per line; no pickles)."""
        words = self.text[1:-1].encode("utf-8")
        with open(path, "wb") as f:
            np.savez(f, words=np.frombuffer(words, np.uint8), token_ids=self.token_ids, unigram_ids=self.unigram_ids,
                     pair_keys=self.pair_keys, pair_ids=self.pair_ids)

    @classmethod
    def load(cls, path: Path) -> "WordIds":
        """Read an index written by ``save``."""
        with np.load(path, allow_pickle=False) as arrays:
            text = arrays["words"].tobytes().decode("utf-8")
            return cls(text, arrays["token_ids"], arrays["unigram_ids"], arrays["pair_keys"], arrays["pair_ids"])

    def lookup(self, tokens: list[str]) -> np.ndarray:
        """Return the words' integers (int64 [n]); words in neither vocabulary get the last slot.

        The first ``FEW_TOKENS`` tokens a process looks up are found in ``text`` (~20 µs each), sparing a one-review
        process the dictionary; past them, the dictionary is built once and used.
        """
        unknown = self.size - 1
        if "ids" not in self.__dict__ and self.found_one_by_one + len(tokens) <= FEW_TOKENS:
            self.found_one_by_one += len(tokens)
            return np.array([self.find(t, unknown) for t in tokens], np.int64)
        return np.fromiter(map(self.ids.get, tokens, itertools.repeat(unknown, len(tokens))), np.int64, len(tokens))

    def find(self, token: str, unknown: int) -> int:
        """Return a token's integer by searching ``text`` (its line's number), or ``unknown``."""
        at = self.text.find(f"\n{token}\n")
        return unknown if at < 0 else self.text.count("\n", 0, at + 1) - 1

    def pair_ids_of(self, words: np.ndarray) -> np.ndarray:
        """Return the 2-gram id of each pair of consecutive word integers (OOV where not in the vocabulary): int [len(words) - 1]."""
        keys = words[:-1] * self.size + words[1:]
        if not len(self.pair_keys):
            return np.full(len(keys), OOV, np.int32)
        # Each distinct pair once, in sorted order: the binary searches then walk the keys in order (measured: 240,000
        # pairs of real reviews 23 ms against 42 ms searched as they come).
        distinct, where = np.unique(keys, return_inverse=True)
        at = np.minimum(np.searchsorted(self.pair_keys, distinct), len(self.pair_keys) - 1)
        return np.where(self.pair_keys[at] == distinct, self.pair_ids[at], OOV)[where]


class Tokenizer:
    """The preprocessing layer of one model: vocabulary, truncation and (wide models) the words of its n-grams."""

    def __init__(self, vocabulary: list[str] | None, max_len: int, truncate: str, ngram_vocabulary: list[str] | None = None,
                 words: WordIds | None = None):
        """``words``: a wide model's stored index (then ``vocabulary`` may be None); else one is built from ``ngram_vocabulary``
        (~0.2 s for 200,000 n-grams)."""
        self.words = words if words is not None or ngram_vocabulary is None else WordIds.build(vocabulary, ngram_vocabulary)
        self.index = make_index(vocabulary) if self.words is None else None  # with the words' index, token ids come from it
        self.max_len, self.truncate = max_len, truncate

    def encode(self, text: str) -> Encoded:
        """Return the review's token ids (and n-gram ids), exactly as the in-graph preprocessor."""
        if self.words is not None:
            return self.encode_many([text])[0]
        return Encoded(truncate(lookup(tokenize(text), self.index), self.max_len, self.truncate), None)

    def encode_many(self, texts: list[str]) -> list[Encoded]:
        """Return ``[encode(t) for t in texts]``; with n-grams, the NumPy work done once for all reviews (a review's share of it was most of encode)."""
        if self.words is None:
            return [self.encode(t) for t in texts]
        tokens = [tokenize(t) for t in texts]
        counts = np.fromiter(map(len, tokens), np.int64, len(tokens))
        ends = np.cumsum(counts)
        starts = ends - counts
        words = self.words.lookup([t for review in tokens for t in review])
        token_ids, unigrams = self.words.token_ids[words], self.words.unigram_ids[words]
        pairs = self.words.pair_ids_of(words)  # [i]: the pair (words[i], words[i + 1]), across reviews too (those are unused)
        encoded = []
        for start, end in zip(starts.tolist(), ends.tolist()):
            ngram_ids = np.concatenate([unigrams[start:end], pairs[start : max(end - 1, start)]]).astype(np.int32)
            encoded.append(Encoded(truncate(token_ids[start:end], self.max_len, self.truncate), ngram_ids))
        return encoded


def has_words(text: str) -> bool:
    """Return True if ``standardize(text)`` is not empty, usually without running all of it.

    An ASCII letter, digit, ``!`` or ``?`` left once line breaks and tags are removed (as standardize
    removes them, after lower-casing) always survives the later steps; only reviews without one need
    the whole standardization.
    """
    if _ASCII_WORD.search(_TAGS.sub(" ", _LINE_BREAKS.sub(" ", lower(text)))):
        return True
    return bool(standardize(text))
