"""Occlusion explanations: exact on models whose answer is known, faithful on a trained one, the same through both engines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_reviews, run_entry

from sentiment.data import fast_tokenizer
from sentiment.evaluation import calibration, explanation
from sentiment.serving import exports, litert_engine

WEIGHTS = {"great": 2.0, "fine": 0.5, "boring": -1.5, "not": 0.0, "good": 1.0}


def linear_scorer(texts: list[str]) -> np.ndarray:
    """A bag-of-words model: logit = sum of its words' weights."""
    logits = np.array([sum(WEIGHTS.get(w, 0.0) for w in t.split()) for t in texts])
    return 1 / (1 + np.exp(-logits))


def negating_scorer(texts: list[str]) -> np.ndarray:
    """``not good`` is negative although ``good`` alone is positive: an interaction no single word carries."""
    logits = []
    for t in texts:
        words = t.split()
        pairs = {" ".join(p) for p in zip(words, words[1:])}
        logits.append(sum(WEIGHTS.get(w, 0.0) for w in words) - 3.0 * ("not good" in pairs))
    return 1 / (1 + np.exp(-np.array(logits)))


def test_a_linear_model_gets_its_exact_weights_back():
    why = explanation.explain(linear_scorer, "a great but boring and fine film".split(), k=2)
    assert [(r.phrase, r.weight) for r in why["positive"]] == [("great", pytest.approx(2.0)), ("fine", pytest.approx(0.5))]
    assert [(r.phrase, r.weight) for r in why["negative"]] == [("boring", pytest.approx(-1.5))]
    assert why["logit"] == pytest.approx(1.0)


def test_a_pair_is_reported_when_it_says_more_than_its_words():
    why = explanation.explain(negating_scorer, "the plot was not good at all".split(), k=3)
    assert [r.phrase for r in why["negative"]] == ["not good"] and why["negative"][0].weight == pytest.approx(-2.0)
    assert why["positive"] == []  # "good" is inside the chosen pair: no word is counted twice
    assert explanation.explain(negating_scorer, [], k=3) == {"logit": None, "positive": [], "negative": [], "cut": None}


def test_many_reviews_are_explained_with_one_call_as_each_alone():
    calls = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return negating_scorer(texts)

    reviews = ["the plot was not good at all".split(), [], "a great but boring and fine film".split(), ["great"]]
    together = explanation.explain_many(counting, reviews, k=2)
    assert len(calls) == 1 and calls[0] == sum(2 * len(r) for r in reviews if r)  # the review, n words, n - 1 pairs each
    assert together == [explanation.explain(negating_scorer, r, k=2) for r in reviews]
    assert explanation.explain_many(counting, [[], []]) == [{"logit": None, "positive": [], "negative": [], "cut": None}] * 2


@pytest.fixture(scope="module")
def predictor(saved_model):
    return litert_engine.LiteRTPredictor(exports.resolve_model("lstm", saved_model))


def test_the_tokens_explained_are_the_review_the_model_scored(predictor):
    for text, _ in make_reviews(6, seed=3):
        whole = explanation.explain(predictor.probabilities, fast_tokenizer.tokenize(text), k=1)["logit"]
        assert whole == pytest.approx(float(calibration.to_logits(predictor.probabilities([text]))[0]), abs=1e-4)


def test_deleting_the_top_reasons_moves_the_prediction_more_than_deleting_random_words(predictor):
    """The faithfulness check: on a trained model, the words named matter more than words picked at random."""
    rng = np.random.default_rng(0)
    top_moves, random_moves = [], []
    for text, _ in make_reviews(16, seed=5):
        tokens = fast_tokenizer.tokenize(text)
        why = explanation.explain(predictor.probabilities, tokens, k=2)
        side = why["positive"] if why["logit"] > 0 else why["negative"]  # what drove the label it got
        drop = {r.start + j for r in side for j in range(len(r.phrase.split()))}
        kept = lambda gone: " ".join(t for i, t in enumerate(tokens) if i not in gone)  # noqa: E731
        top_moves.append(abs(why["logit"] - calibration.to_logits(predictor.probabilities([kept(drop)]))[0]))
        draws = [set(rng.choice(len(tokens), size=len(drop), replace=False).tolist()) for _ in range(10)]
        random_moves.append(np.mean(np.abs(why["logit"] - calibration.to_logits(predictor.probabilities([kept(d) for d in draws])))))
    assert np.mean(top_moves) > 2 * np.mean(random_moves)
    assert np.mean(np.array(top_moves) > np.array(random_moves)) >= 0.8


def test_predict_explain_gives_the_same_reasons_through_both_engines(saved_model, capsys):
    review = "a great wonderful film, though the plot was boring"
    rows = {}
    for engine in ("litert", "savedmodel"):
        code, out, err = run_entry("predict.py", ["--models-dir", str(saved_model), "--model", "lstm", "--engine", engine,
                                                  "--format", "json", "--explain", "2", review], capsys)
        assert code == 0, err
        rows[engine] = json.loads(out)
    lite, saved = rows["litert"]["reasons"], rows["savedmodel"]["reasons"]
    for side in ("positive", "negative"):
        assert [r["phrase"] for r in lite[side]] == [r["phrase"] for r in saved[side]]
        np.testing.assert_allclose([r["weight"] for r in lite[side]], [r["weight"] for r in saved[side]], atol=2e-3)
    assert len(lite["positive"]) <= 2 and all(r["weight"] > 0 for r in lite["positive"])
    code, out, _ = run_entry("predict.py", ["--models-dir", str(saved_model), "--model", "lstm", "--explain", review], capsys)
    assert code == 0 and out.splitlines()[1].lstrip().startswith("why: ")  # a bare --explain leaves the review alone


def test_a_long_review_is_explained_on_the_end_its_model_reads_in_flat_memory():
    seen = []

    def recording(texts: list[str]) -> np.ndarray:
        seen.append((len(texts), max(len(t.split()) for t in texts)))
        return linear_scorer(texts)

    tokens = ["filler"] * 20_000 + ["great"]
    why = explanation.explain(recording, tokens, k=1)
    assert why["cut"] == f"explained on its last {explanation.MAX_WORDS} of 20,001 words"
    assert [r.phrase for r in why["positive"]] == ["great"]
    assert max(n for n, _ in seen) <= explanation.SCORE_CHUNK and max(w for _, w in seen) <= explanation.MAX_WORDS
    head = explanation.explain(linear_scorer, ["great"] + ["filler"] * 20_000, k=1, keep_tail=False)
    assert head["cut"].startswith("explained on its first") and [r.phrase for r in head["positive"]] == ["great"]
    assert explanation.explain(linear_scorer, ["great"] * 10, k=1)["cut"] is None


def test_the_time_budget_cuts_an_explanation_and_says_so():
    def slow(texts: list[str]) -> np.ndarray:
        import time

        time.sleep(0.05)
        return linear_scorer(texts)

    tokens = "great film ".split() * 200
    why = explanation.explain(slow, tokens, k=2, seconds=0.01)
    assert why["cut"] == f"the 0.01 s budget ran out after {explanation.SCORE_CHUNK - 1} of {2 * len(tokens) - 1} deletions"
    assert why["logit"] is not None
    assert explanation.explain(slow, tokens, k=2, seconds=0)["cut"] == "the 0 s budget ran out before it was scored"


def test_predict_explains_a_20000_word_review_within_its_budget(saved_model, capsys):
    import time

    review = " ".join(["the film was long and"] * 4_000) + " but great"
    started = time.perf_counter()
    code, out, err = run_entry("predict.py", ["--models-dir", str(saved_model), "--model", "lstm", "--explain", "--format", "json", review], capsys)
    assert code == 0, err
    assert time.perf_counter() - started < 30
    assert "explained on its last 400 of" in json.loads(out)["reasons"]["cut"]


def test_a_repeated_phrase_is_given_once():
    from sentiment.evaluation import explanation

    tokens = "bad good bad good bad good fine".split()
    words = np.array([-1.0, 0.5, -0.9, 0.4, -0.8, 0.3, 0.1])
    positive, negative = explanation.top_reasons(tokens, words, np.zeros(len(tokens) - 1) + words[:-1] + words[1:], 3)
    assert [r.phrase for r in negative] == ["bad"] and [r.phrase for r in positive] == ["good", "fine"]
