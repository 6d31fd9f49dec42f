"""The pure-Python tokenizer gives exactly the in-graph preprocessing's strings and ids.

Run as a script after a TensorFlow upgrade to regenerate ``sentiment/data/unicode_tables.py``:

    python tests/test_fast_tokenizer.py > sentiment/data/unicode_tables.py
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from sentiment import cli  # noqa: E402,F401  (first: sets TensorFlow's log level before it loads)
from sentiment.config import make_config  # noqa: E402
from sentiment.data import fast_tokenizer, unicode_tables  # noqa: E402
from sentiment.data.batching import NGRAM_IDS, TOKEN_IDS  # noqa: E402
from sentiment.data.preprocessing import make_preprocessor, standardize  # noqa: E402

SURROGATES = range(0xD800, 0xE000)

# Reviews that exercise every rule of standardize: Unicode letters, digits and marks, non-ASCII
# whitespace, apostrophes and quotes, markup, !?, emoji, CJK, special casing.
AWKWARD = [
    "This movie was WONDERFUL!!! I loved it... didn't you?",
    "Don’t miss it — it’s ‘great’, isn`t it´? ''Quoted'' 'single' and 'twisted' ones'",
    "'leading and trailing quotes' ' lone ' '' ''' x'y x''y 'x' x' 'x",
    "Line<br />break<br/>and<BR>more<br >and <br\t/> tags <i>italic</i> <a href='x'>link</a> 1 < 2 > 0 <unclosed",
    "non\u00a0breaking\u2003em\u2009thin\u3000ideographic\u200bzero-width\u2028line\u2029para\x85nel\x0bvt\x0cff\x1cfs",
    "tabs\tand\nnewlines\r\nand   many    spaces   ",
    "Café CAFÉ naïve Ærø Øresund œuvre São Paulo Zoë Brontë Ångström ĳ Ǆ ǅ ǈ ῼ",
    "İstanbul DİYARBAKIR ıi Iı STRASSE Straße ẞ GRÜẞE Σίσυφος ΟΔΟΣ ΑΣ Σ ΣΣ aΣ Σa ΣΑΣ. ΣΟΦΟΣ!",
    "e\u0301 combining: cafe\u0301 n\u0303 A\u030a x\u20dd \u0915\u094d\u0937 \u0e01\u0e34",
    "digits 123 ٣٤٥ ൬൭ ¹²³ ½ ⅓ Ⅻ ⅻ ① 𝟘𝟙 ０１２ and 3.14 and 1,000,000 and 50% and #1",
    "emoji 😀👍🏽 ❤️ 👨‍👩‍👧 flags 🇫🇷 and symbols ★ ☆ ♥ © ® ™ € $ £ ¥ ° ± × ÷ → ← ∞",
    "CJK 電影很好看！真的？ 日本語のレビュー。 한국어 리뷰 ㅋㅋㅋ Ｆｕｌｌｗｉｄｔｈ！ＡＢＣ",
    "Arabic فيلم رائع! Hebrew סרט מעולה? Thai หนังดีมาก Devanagari फ़िल्म Cyrillic ФИЛЬМ Хороший",
    "punctuation: a-b a_b a/b a\\b a.b a,b a;b a:b (a) [b] {c} \"d\" «e» „f“ ‹g› @h #i $j %k ^l &m *n +o =p |q ~r",
    "!!!???!?! ?! !? a!b a?b !a? ¡hola! ¿qué? ‼ ⁉ ！ ？",
    "mixed 'em ’n’ rock'n'roll o'clock 90's '90s the '80s rock’n’roll don''t",
    "soft\u00adhyphen zero\u200cwidth\u200djoiner bom\ufeffhere rtl\u200fmark replacement\ufffd private\ue000use",
    "\U00010570 Vithkuqi \u2c2f Glagolitic \ua7c0 Old Polish \U0001e030 new letters",
    "   ",
    "<br /><br />",
    "...",
    "a",
    "A" * 3 + " " + "b " * 70,
    "nul\x00after the nul nothing is read",
]


def code_point_ranges(points: np.ndarray) -> list[tuple[int, int]]:
    """Return sorted code points as inclusive (first, last) ranges."""
    breaks = np.flatnonzero(np.diff(points) != 1)
    return list(zip(points[np.r_[0, breaks + 1]].tolist(), points[np.r_[breaks, len(points) - 1]].tolist()))


def tf_lower(texts: list[str]) -> list[str]:
    """tf.strings.lower(encoding="utf-8"), as Python strings."""
    return [b.decode("utf-8") for b in tf.strings.lower(tf.constant(texts), encoding="utf-8").numpy()]


def tensorflow_unicode_facts() -> dict:
    """Ask TensorFlow, code point by code point: RE2's [\\p{L}\\p{N}], tf.strings.lower, and ICU's final-sigma context.

    ICU lower-cases Σ to ς when, skipping case-ignorable characters, a cased letter precedes
    it and none follows. "AcΣ" → ς and "cΣ" → σ means c is case-ignorable; "cΣ" → ς, cased.
    """
    points = np.array([c for c in range(1, 0x110000) if c not in SURROGATES])
    chars = [chr(c) for c in points]
    word = points[tf.strings.regex_full_match(tf.constant(chars), r"[\p{L}\p{N}]").numpy()]
    lowered = tf_lower(chars)
    after_cased = np.array([low.endswith("ς") for low in tf_lower([f"A{c}Σ" for c in chars])])
    at_start = np.array([low.endswith("ς") for low in tf_lower([f"{c}Σ" for c in chars])])
    return {
        "word": code_point_ranges(word),
        "lower": {int(c): low for c, low in zip(points, lowered) if low != chr(c)},
        "ignorable": code_point_ranges(points[after_cased & ~at_start]),
        "cased": code_point_ranges(points[at_start]),
    }


def lower_runs(lower: dict[int, str]) -> tuple[list[tuple[int, int, int, int]], dict[int, str]]:
    """Compress one-character mappings into (first, count, step, delta) runs; the rest stay a dict."""
    runs: list[tuple[int, int, int, int]] = []
    for code, low in sorted(lower.items()):
        if len(low) != 1:
            continue
        delta = ord(low) - code
        if runs:
            first, count, step, last_delta = runs[-1]
            if last_delta == delta and count == 1 and code - first in (1, 2):
                runs[-1] = (first, 2, code - first, delta)
                continue
            if last_delta == delta and count > 1 and code == first + count * step:
                runs[-1] = (first, count + 1, step, delta)
                continue
        runs.append((code, 1, 1, delta))
    return runs, {code: low for code, low in lower.items() if len(low) != 1}


def unicode_tables_source() -> str:
    """Return the source of sentiment/data/unicode_tables.py for the installed TensorFlow."""
    facts = tensorflow_unicode_facts()
    runs, special = lower_runs(facts["lower"])

    def block(name: str, items: list[str]) -> str:
        lines = "\n".join(f'    "{line} "' for line in textwrap.wrap(" ".join(items), 96, break_on_hyphens=False, break_long_words=False))
        return f"{name} = (\n{lines}\n)\n"

    ranges = lambda key: [f"{a:x}-{b:x}" for a, b in facts[key]]  # noqa: E731
    return (
        '"""Unicode facts of TensorFlow\'s text ops, as data (generated: do not edit).\n\n'
        "Regenerate after a TensorFlow upgrade with\n"
        "``python tests/test_fast_tokenizer.py > sentiment/data/unicode_tables.py``; the tests compare\n"
        "every code point with TensorFlow, so a stale table fails them.\n"
        '"""\n\n'
        f'TENSORFLOW = "{tf.__version__}"\n\n'
        "# RE2's [\\p{L}\\p{N}] (Unicode letters and numbers): inclusive code point ranges, hex.\n"
        + block("WORD_RANGES", ranges("word"))
        + "\n# tf.strings.lower (ICU) on one character: runs first:count:step:delta (first in hex), each\n"
        "# mapping first + i*step to first + i*step + delta; multi-character results in LOWER_SPECIAL.\n"
        + block("LOWER_RUNS", [f"{first:x}:{count}:{step}:{delta}" for first, count, step, delta in runs])
        + f"LOWER_SPECIAL = {ascii(special)}\n"
        "\n# ICU's final-sigma context (Σ → ς): case-ignorable characters, and cased ones that are not.\n"
        + block("CASE_IGNORABLE_RANGES", ranges("ignorable"))
        + "\n"
        + block("CASED_RANGES", ranges("cased"))
    )


def tf_standardize(texts: list[str]) -> list[str]:
    """The in-graph standardize, as Python strings."""
    return [t.decode("utf-8") for t in standardize(tf.constant(texts)).numpy()]


def strip_padding(rows: np.ndarray) -> list[list[int]]:
    """Drop the right padding of each row (real ids are never 0)."""
    return [[int(i) for i in row if i] for row in rows]


def vocabularies(texts: list[str], size: int, ngram_size: int) -> tuple[list[str], list[str]]:
    """Every other distinct token (the rest stay out of vocabulary) and the most frequent 1-2-grams, "" and [UNK] first."""
    tokens = sorted({t for text in tf_standardize(texts) for t in text.split()})
    counts: dict[str, int] = {}
    for text in tf_standardize(texts):
        for gram in fast_tokenizer.ngrams(text.split()):
            counts[gram] = counts.get(gram, 0) + 1
    grams = sorted(counts, key=lambda g: (-counts[g], g))
    return ["", "[UNK]"] + tokens[::2][: size - 2], ["", "[UNK]"] + grams[::2][: ngram_size - 2]


def in_graph_ids(texts: list[str], vocabulary: list[str], ngram_vocabulary: list[str], max_len: int, truncate: str) -> tuple[list, list]:
    """Token and n-gram ids from the model's own preprocessing layer, padding removed."""
    config = make_config("wide_lstm", vocab_size=len(vocabulary), ngram_vocab_size=len(ngram_vocabulary), max_len=max_len, truncate=truncate)
    preprocessor = make_preprocessor(config, vocabulary, ngram_vocabulary)
    token_ids, ngram_ids = [], []
    for start in range(0, len(texts), 512):
        out = preprocessor(tf.constant(texts[start : start + 512]))
        token_ids += strip_padding(out[TOKEN_IDS].numpy())
        ngram_ids += strip_padding(out[NGRAM_IDS].numpy())
    return token_ids, ngram_ids


def python_ids(texts: list[str], vocabulary: list[str], ngram_vocabulary: list[str], max_len: int, truncate: str) -> tuple[list, list]:
    """The same ids from fast_tokenizer."""
    tokenizer = fast_tokenizer.Tokenizer(vocabulary, max_len, truncate, ngram_vocabulary)
    encoded = [tokenizer.encode(text) for text in texts]
    return [e.token_ids.tolist() for e in encoded], [e.ngram_ids.tolist() for e in encoded]


def assert_same_ids(texts: list[str], max_len: int, truncate: str, size: int = 5000, ngram_size: int = 20000) -> None:
    """Standardized strings, token ids and n-gram ids agree on every review; the first difference is named."""
    vocabulary, ngram_vocabulary = vocabularies(texts, size, ngram_size)
    expected_text = tf_standardize(texts)
    expected = in_graph_ids(texts, vocabulary, ngram_vocabulary, max_len, truncate)
    got = python_ids(texts, vocabulary, ngram_vocabulary, max_len, truncate)
    for i, text in enumerate(texts):
        assert fast_tokenizer.standardize(text) == expected_text[i], f"review {i}: {text[:200]!r}"
        assert got[0][i] == expected[0][i], f"token ids of review {i}: {text[:200]!r}"
        assert got[1][i] == expected[1][i], f"n-gram ids of review {i}: {text[:200]!r}"


def test_awkward_reviews_give_the_in_graph_strings_and_ids():
    texts = AWKWARD + [a + " " + b for a, b in zip(AWKWARD, AWKWARD[1:])]
    for max_len, truncate in ((5, "head"), (5, "tail"), (500, "tail")):
        assert_same_ids(texts, max_len, truncate, size=60, ngram_size=80)


def test_generated_unicode_soup_gives_the_in_graph_ids():
    """Random strings drawn from every kind of troublesome character, many times over."""
    rng = np.random.default_rng(0)
    alphabet = list("aAzZ09 '’‘`´<>/!?.,-\"\t\n\r\x0b\x0c") + [
        "<br />", "<br/>", "<BR>", "<p>", "\u00a0", "\u2003", "\u3000", "\u0301", "\u0307", "İ", "ı", "Σ", "σ", "ς",
        "ß", "ẞ", "é", "É", "Ǆ", "ǅ", "٣", "½", "😀", "👍🏽", "電", "ｶ", "\u200b", "\ufeff", "\u00ad", "Ⰿ", "\U00010570",
    ]
    texts = ["".join(rng.choice(alphabet, size=int(rng.integers(1, 60)))) for _ in range(400)]
    assert_same_ids(texts, 12, "tail", size=200, ngram_size=400)
    assert_same_ids(texts, 12, "head", size=200, ngram_size=400)


def test_quote_runs_are_stripped_exactly_as_the_regex_strips_them():
    """strip_quotes finds from the quote runs what the regex's left-to-right scan replaces (it consumes spaces, so order matters)."""
    rng = np.random.default_rng(2)
    pieces = ["'", "''", " ", "\t", "\n", "\x0b", "a", "b", "x y", "don't"]
    texts = ["", "'", "' '", "x' 'y", "'a' 'b'", "a''", "''a", "a ' b", "it's", " 'tis "]
    texts += ["".join(rng.choice(pieces, size=int(rng.integers(0, 14)))) for _ in range(20_000)]
    for text in texts:
        assert fast_tokenizer.strip_quotes(text) == fast_tokenizer._QUOTES.sub(" ", text), repr(text)


def test_has_words_is_standardize_not_being_empty():
    """The shortcut never claims words standardize would not leave (tags hiding letters, upper-case tags, NUL)."""
    rng = np.random.default_rng(1)
    alphabet = list("aZ9 !?.'<>/\x00") + ["<br />", "<BR />", "<a ", " b>", "<i>", "</i>", "É", "電", "\u0301", "…"]
    texts = AWKWARD + ["", "...", "<br /><br />", "<a <BR /> b>", "<a <br /> b>", "!!!", "x\x00", "\x00x", "<b>é</b>", "…"]
    texts += ["".join(rng.choice(alphabet, size=int(rng.integers(1, 12)))) for _ in range(3000)]
    for text in texts:
        assert fast_tokenizer.has_words(text) == bool(fast_tokenizer.standardize(text)), repr(text)


def test_word_ids_look_n_grams_up_as_the_vocabulary_does(tmp_path):
    """Bigrams found without building their strings; words of a bigram need not be unigrams; the stored index loads back."""
    vocabulary = ["", "[UNK]", "good", "film", "not"]
    ngram_vocabulary = ["", "[UNK]", "good", "not good", "rare pair", "film", "good film", "pair film"]
    text = "not good film rare pair film unknown good"
    tokens = fast_tokenizer.tokenize(text)
    expected = fast_tokenizer.lookup(fast_tokenizer.ngrams(tokens), fast_tokenizer.make_index(ngram_vocabulary))
    built = fast_tokenizer.WordIds.build(vocabulary, ngram_vocabulary)
    built.save(tmp_path / "index.npz")
    for words in (built, fast_tokenizer.WordIds.load(tmp_path / "index.npz")):
        tokenizer = fast_tokenizer.Tokenizer(vocabulary, 4, "tail", words=words)
        encoded = tokenizer.encode(text)
        assert encoded.ngram_ids.tolist() == expected.tolist()
        assert encoded.token_ids.tolist() == [1, 3, 1, 2]  # the last 4 tokens: pair film unknown good
        assert tokenizer.encode("").ngram_ids.tolist() == [] and tokenizer.encode("").token_ids.tolist() == []
    with pytest.raises(ValueError, match="more than two words"):
        fast_tokenizer.WordIds.build(vocabulary, ["", "[UNK]", "a b c"])


@pytest.mark.parametrize("truncate", ["tail", "head"])
def test_encoding_many_reviews_at_once_equals_one_by_one(truncate):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(60)]
    vocabulary = ["", "[UNK]"] + words[:40]
    ngram_vocabulary = ["", "[UNK]"] + words[::2] + [f"{a} {b}" for a, b in zip(words[:50], words[1:51])]
    tokenizer = fast_tokenizer.Tokenizer(vocabulary, 6, truncate, words=fast_tokenizer.WordIds.build(vocabulary, ngram_vocabulary))
    texts = [" ".join(rng.choice(words + ["Café!", "<br />", "unknown"], int(n))) for n in rng.integers(0, 12, 300)]
    texts += ["", "w1", "w1 w2", "...", "w3 w4 w5 w6 w7 w8 w9 w10"]
    many = tokenizer.encode_many(texts)
    assert len(many) == len(texts)
    for text, got in zip(texts, many):
        one = tokenizer.encode(text)
        assert got.token_ids.tolist() == one.token_ids.tolist() and got.ngram_ids.tolist() == one.ngram_ids.tolist(), text
        assert got.token_ids.dtype == one.token_ids.dtype and got.ngram_ids.dtype == one.ngram_ids.dtype == np.int32


def test_word_ids_found_one_by_one_equal_the_dictionarys(monkeypatch):
    """A few tokens are found by searching the words' text, then the dictionary takes over; both give the same integers."""
    rng = np.random.default_rng(0)
    vocabulary = ["", "[UNK]"] + [f"w{i}" for i in range(300)]
    ngram_vocabulary = ["", "[UNK]"] + [f"w{i}" for i in range(0, 300, 2)] + [f"w{i} w{i + 1}" for i in range(0, 299, 3)] + ["x y"]
    tokens = [f"w{i}" for i in rng.integers(0, 320, 200)] + ["x", "y", "unknown", "w0", "w299"]
    searched = fast_tokenizer.WordIds.build(vocabulary, ngram_vocabulary)
    monkeypatch.setattr(fast_tokenizer, "FEW_TOKENS", len(tokens))
    one_by_one = searched.lookup(tokens)
    assert "ids" not in searched.__dict__  # found without the dictionary
    dictionary = fast_tokenizer.WordIds.build(vocabulary, ngram_vocabulary)
    assert dictionary.lookup(tokens + ["w1"]).tolist() == one_by_one.tolist() + [dictionary.ids["w1"]]
    assert "ids" in dictionary.__dict__  # past FEW_TOKENS
    assert one_by_one[-3] == searched.size - 1 and one_by_one[-2] == 0 == dictionary.ids["w0"]  # unknown; the first word


def test_every_code_point_standardizes_as_in_graph():
    """Each non-ASCII character, between two letters, is kept (lower-cased) or blanked exactly as RE2 and ICU do."""
    points = [c for c in range(0x80, 0x110000) if c not in SURROGATES]
    texts = [" ".join(f"x{chr(c)}y" for c in points[i : i + 2000]) for i in range(0, len(points), 2000)]
    expected = tf_standardize(texts)
    for text, want in zip(texts, expected):
        got = fast_tokenizer.standardize(text)
        if got != want:
            diff = next(i for i, (a, b) in enumerate(zip(got.split(), want.split())) if a != b)
            pytest.fail(
                f"U+{ord(text.split()[diff][1]):04X}: got {got.split()[diff]!r}, TensorFlow {want.split()[diff]!r}; "
                f"regenerate sentiment/data/unicode_tables.py (TensorFlow {tf.__version__}, tables from {unicode_tables.TENSORFLOW})"
            )


def test_lower_matches_tensorflow_on_every_code_point_and_on_final_sigma():
    """Every character alone, and around a Σ whose final form (ς) depends on its neighbours.

    The neighbours are tried from the planes that hold cased or case-ignorable characters
    (0, 1 and 14); planes 2-13, 15 and 16 hold CJK ideographs, private use or nothing.
    """
    points = [c for c in range(1, 0x110000) if c not in SURROGATES]
    texts = [" ".join(f"x{chr(c)}y" for c in points[i : i + 2000]) for i in range(0, len(points), 2000)]
    neighbours = [c for c in points if c >> 16 in (0, 1, 14)]
    entry = lambda c: f"A{c}Σ {c}Σ AΣ{c} AΣ{c}a"  # noqa: E731
    texts += [" ".join(entry(chr(c)) for c in neighbours[i : i + 2000]) for i in range(0, len(neighbours), 2000)]
    texts += ["ΟΔΟΣ ΑΣ Σ ΣΣ aΣ Σa ΣΑΣ. ΣΟΦΟΣ! İΣ ΣİΣ Σ\u0301 AΣ\u0301 A\u0301Σ x\u00adΣ Σ\x00tail", "İİΣ ΣΣΣ σΣ"]
    assert [fast_tokenizer.lower(t) for t in texts] == tf_lower(texts)


def test_ngrams_and_truncation():
    assert fast_tokenizer.ngrams(["a", "b", "c"]) == ["a", "b", "c", "a b", "b c"]
    assert fast_tokenizer.ngrams(["a"]) == ["a"] and fast_tokenizer.ngrams([]) == []
    ids = np.arange(2, 12, dtype=np.int32)
    assert fast_tokenizer.truncate(ids, 3, "head").tolist() == [2, 3, 4]
    assert fast_tokenizer.truncate(ids, 3, "tail").tolist() == [9, 10, 11]
    assert fast_tokenizer.truncate(ids, 30, "tail").tolist() == ids.tolist()


def test_vocabulary_file_round_trip(tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_text("the\nfilm\ncafé", encoding="utf-8")  # as preprocessing.save_vocabulary writes it
    vocabulary = fast_tokenizer.load_vocabulary(path)
    assert vocabulary == ["", "[UNK]", "the", "film", "café"]
    tokenizer = fast_tokenizer.Tokenizer(vocabulary, max_len=10, truncate="tail")
    encoded = tokenizer.encode("The CAFÉ, unknown film!")
    assert encoded.token_ids.tolist() == [2, 4, 1, 3, 1] and encoded.ngram_ids is None
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert fast_tokenizer.load_vocabulary(tmp_path / "empty.txt") == ["", "[UNK]"]
    for file in (path, tmp_path / "empty.txt"):
        assert fast_tokenizer.vocabulary_size(file) == len(fast_tokenizer.load_vocabulary(file))


def test_importing_it_does_not_import_tensorflow():
    code = "import sys; from sentiment.data import fast_tokenizer; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_ascii_reviews_need_no_unicode_table():
    # A one-review process skips loading them (~10 ms); ASCII letters and digits are RE2's \p{L}/\p{N} there.
    code = ("import sys; from sentiment.data import fast_tokenizer as f; f.tokenize('A fine film, 10/10!'); "
            "print('sentiment.data.unicode_tables' in sys.modules); f.tokenize('Très bien'); print('sentiment.data.unicode_tables' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    letters = fast_tokenizer._RangeSet(unicode_tables.WORD_RANGES)
    assert all(chr(code).isalnum() == letters[chr(code)] for code in range(128))


def read_parity_csv(path: str) -> list[str]:
    """The text column of a text,label CSV (optionally gzipped)."""
    data = Path(path).read_bytes()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    return [row["text"] for row in csv.DictReader(io.StringIO(data.decode("utf-8")))]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SENTIMENT_PARITY_CSV"), reason="set SENTIMENT_PARITY_CSV to a text,label CSV(.gz)")
def test_every_review_of_a_csv_gives_the_in_graph_ids():
    """Exact ids on real reviews, e.g. SENTIMENT_PARITY_CSV=path/to/imdb_train.csv.gz (about a minute)."""
    texts = read_parity_csv(os.environ["SENTIMENT_PARITY_CSV"])
    assert texts, "the CSV holds no reviews"
    assert_same_ids(texts, 800, "tail", size=20000, ngram_size=200000)
    assert_same_ids(texts, 200, "head", size=20000, ngram_size=200000)


if __name__ == "__main__":
    print(unicode_tables_source(), end="")
