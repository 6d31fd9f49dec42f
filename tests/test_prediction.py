"""Prediction from an exported model: the library, predict.py's main(argv), and the shipped models."""

from __future__ import annotations

import io
import json

import pytest

from conftest import run_entry
from sentiment import cli, prediction
from sentiment.serving import exports, litert_engine
from sentiment.serving import reviews as reading
from sentiment.errors import ModelError, SentimentError

# P(positive) and label of the shipped SavedModels (predict.py's default models), measured
# when they were pinned: a change to them, or to how they are loaded and fed, shows here.
SHIPPED = {
    ("lstm", "1"): {"This movie was wonderful": (0.653367, "positive"), "Worst film I have ever seen": (0.127809, "negative")},
    ("simple_rnn", "1"): {"This movie was wonderful": (0.547270, "positive"), "Worst film I have ever seen": (0.172279, "negative")},
    ("wide_lstm", "1"): {"This movie was wonderful": (0.874643, "positive"), "Worst film I have ever seen": (0.005943, "negative")},
    ("wide_lstm", "2"): {"This movie was wonderful": (0.854967, "positive"), "Worst film I have ever seen": (0.015590, "negative")},
}


def run_predict(capsys, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run predict.py's main(argv) in-process on the tiny test model ``lstm``; return (exit code, stdout, stderr)."""
    args = list(args) if "--model" in args else [*args, "--model", "lstm"]
    return run_entry("predict.py", args, capsys, stdin=stdin)


def test_every_shipped_version_is_pinned_and_names_resolve_to_the_newest():
    shipped = {(d.parent.name, d.name) for d in cli.DEFAULT_MODELS_DIR.glob("*/*") if (d / "saved_model.pb").exists()}
    assert shipped == set(SHIPPED), "a model was shipped or removed: measure and pin its probabilities"
    for name in {n for n, _ in SHIPPED}:
        newest = max(int(v) for n, v in SHIPPED if n == name)
        assert exports.resolve_model(name, cli.DEFAULT_MODELS_DIR) == cli.DEFAULT_MODELS_DIR / name / str(newest)


@pytest.mark.parametrize("engine", ["savedmodel", "litert"])
@pytest.mark.parametrize("name, version", sorted(SHIPPED))
def test_shipped_models_give_their_recorded_probabilities(name, version, engine):
    expected = SHIPPED[name, version]
    path = cli.DEFAULT_MODELS_DIR / name / version
    if engine == "litert" and not litert_engine.has_litert(path):
        pytest.skip(f"{path} has no LiteRT model yet: python export_model.py --add-litert {path}")
    predictor = litert_engine.LiteRTPredictor(path) if engine == "litert" else prediction.Predictor(path)
    preds, rejected = reading.classify(predictor, [reading.Review(text, text) for text in expected])
    assert not rejected and len(preds) == len(expected)
    for p in preds:
        probability, label = expected[p.text]
        assert p.probability == pytest.approx(probability, abs=1e-4), p.text
        assert p.label == label, p.text


def test_resolve_model_by_name_dir_and_version(saved_model):
    latest = saved_model / "lstm" / "1"
    assert exports.resolve_model("lstm", saved_model) == latest
    assert exports.resolve_model(str(saved_model / "lstm"), saved_model) == latest
    assert exports.resolve_model(str(latest), saved_model) == latest


def test_unknown_and_corrupt_models_are_model_errors(saved_model, tmp_path):
    with pytest.raises(ModelError, match="available: lstm"):
        exports.resolve_model("transformer", saved_model)
    (tmp_path / "broken" / "3").mkdir(parents=True)
    with pytest.raises(ModelError, match="no saved_model.pb"):
        exports.resolve_model(str(tmp_path / "broken"), saved_model)
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="cannot load model"):
        prediction.Predictor(bad)


def test_classify_batches_thresholds_and_rejects(saved_model):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    reviews = [reading.Review(f"r{i}", t) for i, t in enumerate(["great wonderful film", "   ", "awful worst film"] * 3)]
    seen = []
    preds, rejected = reading.classify(predictor, reviews, batch_size=2, on_batch=seen.append)
    assert len(preds) == 6 and sum(seen) == 6 and max(seen) == 2
    assert [r.problem for r in rejected] == ["empty review"] * 3
    assert preds[0].probability > preds[1].probability
    everything_positive, _ = reading.classify(predictor, reviews, threshold=0.0)
    assert {p.label for p in everything_positive} == {"positive"}
    with pytest.raises(SentimentError):
        reading.classify(predictor, reviews, threshold=1.5)


def test_huge_review_is_capped_not_fatal(saved_model, caplog):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    assert predictor.keeps_tail  # the shared run uses the default truncate="tail"
    huge = reading.Review("big", "START " + "great " * 200_000 + "THE END")  # ~1.2 MB
    with caplog.at_level("WARNING"):
        preds, rejected = reading.classify(predictor, [huge])
    assert len(preds) == 1 and not rejected
    assert "only the last 100000" in caplog.text
    assert preds[0].text.endswith("THE END") and not preds[0].text.startswith("START")
    head = reading.check_review(reading.Review("h", "START " + "x " * 60_000), keep_tail=False)
    assert head.text.startswith("START") and len(head.text) == reading.MAX_REVIEW_CHARS


def test_reviews_without_words_are_rejected(saved_model):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    reviews = [reading.Review("a", "<br /><br />"), reading.Review("b", "..."), reading.Review("c", "great film")]
    preds, rejected = reading.classify(predictor, reviews)
    assert [p.source for p in preds] == ["c"]
    assert [r.source for r in rejected] == ["a", "b"] and "no words" in rejected[0].problem


def test_invalid_utf8_lines_are_reported_and_others_kept():
    data = b"good film\n\xff\xfe broken\n\nbad film\n"
    reviews = list(reading.read_lines(data, "f line"))
    assert [(r.source, r.problem is None) for r in reviews] == [("f line 1", True), ("f line 2", False), ("f line 3", True), ("f line 4", True)]
    assert reviews[2].text == ""  # kept, so classify() reports it as an empty review


def test_arguments_that_are_not_utf8_are_reported_not_fatal():
    reviews = reading.gather_reviews(["good film", "good \udcff film"], None, io.BytesIO())  # how Python keeps byte 0xff of argv
    assert [(r.text, r.problem) for r in reviews] == [("good film", None), ("", "not valid UTF-8 (character 6)")]


def test_gather_reviews_sources(tmp_path):
    file = tmp_path / "reviews.txt"
    file.write_text("one\ntwo\n")
    reviews = reading.gather_reviews(["arg", "-"], str(file), io.BytesIO(b"from stdin\n"))
    assert [r.text for r in reviews] == ["arg", "from stdin", "one", "two"]
    with pytest.raises(SentimentError, match="no reviews"):
        reading.gather_reviews([], None, io.BytesIO())
    with pytest.raises(SentimentError, match="cannot read"):
        reading.gather_reviews([], str(tmp_path / "missing.txt"), io.BytesIO())


def test_formats():
    preds = [reading.Prediction("a", 'say "hi", ok', "positive", 0.75)]
    assert json.loads(next(reading.format_predictions(preds, "json"))) == {"text": 'say "hi", ok', "label": "positive", "probability": 0.75}
    assert next(reading.format_predictions(preds, "csv")) == 'text,label,probability\n"say ""hi"", ok",positive,0.750000'
    assert next(reading.format_predictions(preds, "text")).startswith("positive 0.750")


@pytest.mark.parametrize("engine", ["litert", "savedmodel"])
def test_cli_file_with_bad_bytes_classifies_the_rest(saved_model, tmp_path, capsys, engine):
    file = tmp_path / "reviews.txt"
    file.write_bytes(b"great wonderful film\n\xff bad bytes\nawful worst film\n")
    code, out, err = run_predict(capsys, "--models-dir", str(saved_model), "--file", str(file), "--format", "json", "--engine", engine)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["text"] for line in lines] == ["great wonderful film", "awful worst film"]
    assert "line 2: not valid UTF-8" in err


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["--model", "nope", "x"], b"", "no model 'nope'"),
        (["   "], b"", "empty review"),
        ([], b"", "no reviews given"),
        (["-"], b"\n  \n", "skipped stdin line 2: empty review"),
    ],
)
@pytest.mark.parametrize("engine", ["litert", "savedmodel"])
def test_cli_failures_are_one_line_and_nonzero(saved_model, capsys, args, stdin, message, engine):
    code, _, err = run_predict(capsys, "--models-dir", str(saved_model), "--engine", engine, *args, stdin=stdin)
    assert code != 0
    assert message in err and "Traceback" not in err


def test_only_newlines_end_lines_so_numbers_match_wc_and_sed():
    """A lone \\r (or U+2028) inside a line stays in the review; \\r\\n endings lose their \\r."""
    data = "one\rstill one\r\ntwo\u2028still two\nthree".encode()
    reviews = list(reading.read_lines(data, "f line"))
    assert [(r.source, r.text) for r in reviews] == [
        ("f line 1", "one\rstill one"), ("f line 2", "two\u2028still two"), ("f line 3", "three")]
    assert len(list(reading.read_lines(b"a\nb\n", "x"))) == 2  # the final newline ends a line, starts none
