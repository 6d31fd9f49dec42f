"""Prediction from an exported model: the library, predict.py's main(argv), and the shipped models."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json

import numpy as np
import pytest
from conftest import run_entry

from sentiment import cli
from sentiment.errors import ModelError, SentimentError
from sentiment.export import prediction
from sentiment.serving import exports, litert_engine
from sentiment.serving import reviews as reading

# P(positive) and label of the shipped SavedModels (predict.py's default models), measured
# when they were pinned: a change to them, or to how they are loaded and fed, shows here.
SHIPPED = {
    ("lstm", "1"): {"This movie was wonderful": (0.653367, "positive"), "Worst film I have ever seen": (0.127809, "negative")},
    # BiLSTM over the last 800 tokens from skip-gram vectors of training + unlabelled reviews (configs/lstm_v2.json).
    ("lstm", "2"): {"This movie was wonderful": (0.913993, "positive"), "Worst film I have ever seen": (0.017099, "negative")},
    # lstm/2's model also trained on the unlabelled reviews, labelled by NBSVM-bi (configs/lstm_v5.json: --teacher nbsvm_bi).
    ("lstm", "3"): {"This movie was wonderful": (0.947956, "positive"), "Worst film I have ever seen": (0.011191, "negative")},
    # lstm/3's recipe trained adversarially on its word vectors (configs/lstm_v7.json: --adversarial 0.02).
    ("lstm", "4"): {"This movie was wonderful": (0.963170, "positive"), "Worst film I have ever seen": (0.010222, "negative")},
    ("simple_rnn", "1"): {"This movie was wonderful": (0.547270, "positive"), "Worst film I have ever seen": (0.172279, "negative")},
    # BiSimpleRNN, max and mean over the last 800 tokens from the same vectors as lstm/2, trained longer (configs/simple_rnn_v3.json).
    ("simple_rnn", "2"): {"This movie was wonderful": (0.992565, "positive"), "Worst film I have ever seen": (0.049706, "negative")},
    # simple_rnn/2's model also trained on the unlabelled reviews, labelled by NBSVM-bi (configs/simple_rnn_v4.json).
    ("simple_rnn", "3"): {"This movie was wonderful": (0.997059, "positive"), "Worst film I have ever seen": (0.087303, "negative")},
    ("wide_lstm", "1"): {"This movie was wonderful": (0.874643, "positive"), "Worst film I have ever seen": (0.005943, "negative")},
    ("wide_lstm", "2"): {"This movie was wonderful": (0.854967, "positive"), "Worst film I have ever seen": (0.015590, "negative")},
    # wide_lstm/2 recalibrated (export_model.py --calibrate): the same weights, temperature 0.870.
    ("wide_lstm", "3"): {"This movie was wonderful": (0.884915, "positive"), "Worst film I have ever seen": (0.008440, "negative")},
    # v5: stacked branches, the LSTM from skip-gram vectors of training + unlabelled reviews (configs/wide_lstm_v5.json).
    ("wide_lstm", "4"): {"This movie was wonderful": (0.931639, "positive"), "Worst film I have ever seen": (0.002330, "negative")},
    # v7: v5's stack with lstm/3's taught BiLSTM (max and mean over 400 tokens) as its deep branch (configs/wide_lstm_v7.json).
    ("wide_lstm", "5"): {"This movie was wonderful": (0.985117, "positive"), "Worst film I have ever seen": (0.001006, "negative")},
    # v8: v7's stack with a BiLSTM of 32 units over 256 tokens, trained adversarially on its word vectors (configs/wide_lstm_v8.json).
    ("wide_lstm", "6"): {"This movie was wonderful": (0.978405, "positive"), "Worst film I have ever seen": (0.001792, "negative")},
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
    results = reading.classify(predictor, [reading.Review(text) for text in expected])
    assert [r.error for r in results] == [None] * len(expected)
    for r in results:
        probability, label = expected[r.review.text]
        assert r.probability == pytest.approx(probability, abs=1e-4), r.review.text
        assert r.label == label, r.review.text


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


def test_classify_batches_thresholds_and_rejects_in_input_order(saved_model):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    reviews = [reading.Review(t, i) for i, t in enumerate(["great wonderful film", "   ", "awful worst film"] * 3, start=1)]
    seen = []
    results = reading.classify(predictor, reviews, chunk_size=2, on_batch=seen.append)
    assert [r.review.line for r in results] == list(range(1, 10))  # one result per review, rejected ones in place
    assert sum(seen) == 6 and max(seen) == 2
    assert [r.error for r in results[1::3]] == ["empty review"] * 3 and {r.label for r in results[1::3]} == {None}
    assert results[0].probability > results[2].probability
    everything_positive = reading.classify(predictor, reviews, threshold=0.0)
    assert {r.label for r in everything_positive if r.error is None} == {"positive"}
    with pytest.raises(SentimentError):
        reading.classify(predictor, reviews, threshold=1.5)


def test_classify_streams_in_chunks():
    """Reviews are pulled chunk by chunk, one chunk ahead: the first chunk's results come before the rest is even read."""

    class Count:
        keeps_tail = True

        def probabilities(self, texts):
            return np.full(len(texts), 0.75, np.float32)

    pulled = []

    def endless():
        for i in itertools.count(1):
            pulled.append(i)
            yield reading.Review(f"review {i}", i)

    chunks = reading.classify_chunks(Count(), endless(), chunk_size=10)
    first = next(chunks)  # the next chunk is read (and its scoring started) before this one is handed out
    assert [r.review.line for r in first] == list(range(1, 11)) and len(pulled) == 20
    assert [r.review.line for r in next(chunks)] == list(range(11, 21)) and len(pulled) == 30


def test_huge_review_is_capped_not_fatal(saved_model, caplog):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    assert predictor.keeps_tail  # the shared run uses the default truncate="tail"
    huge = reading.Review("START " + "great " * 200_000 + "THE END", 1)  # ~1.2 MB
    with caplog.at_level("WARNING"):
        (result,) = reading.classify(predictor, [huge])
    assert result.error is None
    assert "only the last 100000" in caplog.text
    assert result.review.text.endswith("THE END") and not result.review.text.startswith("START")
    head = reading.check_review(reading.Review("START " + "x " * 60_000), keep_tail=False)
    assert head.text.startswith("START") and len(head.text) == reading.MAX_REVIEW_CHARS


def test_reviews_without_words_are_rejected(saved_model):
    predictor = prediction.Predictor(exports.resolve_model("lstm", saved_model))
    reviews = [reading.Review("<br /><br />", 1), reading.Review("...", 2), reading.Review("great film", 3)]
    results = reading.classify(predictor, reviews)
    assert [r.label is not None for r in results] == [False, False, True]
    assert "no words" in results[0].error


def test_invalid_utf8_lines_are_reported_and_others_kept():
    reviews = list(reading.read_lines(b"good film\n\xff\xfe broken\n\nbad film\n", "f"))
    assert [(r.source, r.problem is None) for r in reviews] == [("f line 1", True), ("f line 2", False), ("f line 3", True), ("f line 4", True)]
    assert reviews[2].text == ""  # kept, so classify() reports it as an empty review


def test_arguments_that_are_not_utf8_are_reported_not_fatal():
    reviews = list(reading.gather_reviews(["good film", "good \udcff film"], None, io.BytesIO()))  # how Python keeps byte 0xff of argv
    assert [(r.text, r.problem, r.source) for r in reviews] == [
        ("good film", None, "argument 1"), ("", "not valid UTF-8 (character 6)", "argument 2")]


def test_gather_reviews_sources(tmp_path):
    file = tmp_path / "reviews.txt"
    file.write_text("one\ntwo\n")
    reviews = list(reading.gather_reviews(["arg", "-"], str(file), io.BytesIO(b"from stdin\n")))
    assert [(r.text, r.input, r.line) for r in reviews] == [("arg", "arguments", 1), ("from stdin", "stdin", 1), ("one", str(file), 1), ("two", str(file), 2)]
    gz = tmp_path / "reviews.txt.gz"
    gz.write_bytes(gzip.compress(b"zipped\n"))
    assert [r.text for r in reading.gather_reviews([], str(gz), io.BytesIO())] == ["zipped"]
    with pytest.raises(SentimentError, match="no reviews"):
        reading.gather_reviews([], None, io.BytesIO())
    with pytest.raises(SentimentError, match="cannot read"):
        reading.gather_reviews([], str(tmp_path / "missing.txt"), io.BytesIO())


def test_csv_input_keeps_its_columns_and_lines(tmp_path):
    file = tmp_path / "reviews.csv"
    file.write_bytes('id,review,label\n7,"a fine,\nfilm",1\n8,too,many,fields\n9,\xff bad,0\n10,awful,0\n'.encode("latin-1"))
    reviews = list(reading.gather_reviews([], str(file), io.BytesIO(), text_column="review"))
    assert [(r.line, r.text, r.columns, r.problem) for r in reviews] == [
        (2, "a fine,\nfilm", {"id": "7", "input_label": "1"}, None),  # the input's label column may not pass for ours
        (4, "", {"id": "", "input_label": ""}, "4 fields where the header has 3"),
        (5, "", {"id": "", "input_label": ""}, "column 'review' is not valid UTF-8 (character 1)"),
        (6, "awful", {"id": "10", "input_label": "0"}, None),
    ]
    with pytest.raises(SentimentError, match="no column 'text' .*'review'"):
        reading.gather_reviews([], str(file), io.BytesIO())
    with pytest.raises(SentimentError, match="a CSV --file"):
        reading.gather_reviews(["x"], None, io.BytesIO(), text_column="review")


def test_formats_give_one_row_per_review_with_its_line():
    ok = reading.Result(reading.Review('say "hi", ok', 3, "f.csv", columns={"id": "7"}), "positive", 0.75)
    bad = reading.Result(reading.Review("", 4, "f.csv", problem="empty review", columns={"id": "8"}))
    rows = [json.loads(line) for line in reading.format_results([ok, bad], "json")]
    assert rows == [{"input": "f.csv", "line": 3, "id": "7", "text": 'say "hi", ok', "label": "positive", "probability": 0.75},
                    {"input": "f.csv", "line": 4, "id": "8", "text": "", "error": "empty review"}]
    assert list(reading.format_results([ok, bad], "csv")) == [
        "input,line,id,text,label,probability,error", 'f.csv,3,7,"say ""hi"", ok",positive,0.750000,', "f.csv,4,8,,,,empty review"]
    assert list(reading.format_results([ok], "csv", header=False)) == ['f.csv,3,7,"say ""hi"", ok",positive,0.750000,']
    assert [line[:14] for line in reading.format_results([ok, bad], "text")] == ["positive 0.750"]  # text: skips go to stderr


@pytest.mark.parametrize("engine", ["litert", "savedmodel"])
def test_cli_file_with_bad_bytes_gives_a_row_for_every_line(saved_model, tmp_path, capsys, engine):
    file = tmp_path / "reviews.txt"
    file.write_bytes(b"great wonderful film\n\xff bad bytes\nawful worst film\n")
    code, out, err = run_predict(capsys, "--models-dir", str(saved_model), "--file", str(file), "--format", "json", "--engine", engine)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["text"], "label" in r) for r in rows] == [(1, "great wonderful film", True), (2, "", False), (3, "awful worst film", True)]
    assert rows[1]["error"].startswith("not valid UTF-8")


def test_cli_csv_in_csv_out_carries_ids(saved_model, tmp_path, capsys):
    file = tmp_path / "reviews.csv"
    file.write_text("id,review\nr1,great wonderful film\nr2,\nr3,awful worst film\n")
    code, out, err = run_predict(capsys, "--models-dir", str(saved_model), "--file", str(file), "--text-column", "review", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["line"], r["id"], r["error"]) for r in rows] == [("2", "r1", ""), ("3", "r2", "empty review"), ("4", "r3", "")]
    assert rows[0]["label"] and not rows[1]["label"]


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
    reviews = list(reading.read_lines(data, "f"))
    assert [(r.source, r.text) for r in reviews] == [
        ("f line 1", "one\rstill one"), ("f line 2", "two\u2028still two"), ("f line 3", "three")]
    assert len(list(reading.read_lines(b"a\nb\n", "x"))) == 2  # the final newline ends a line, starts none
