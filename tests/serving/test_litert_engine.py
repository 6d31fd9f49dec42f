"""The LiteRT engine: same labels and probabilities (within 1e-4) as the SavedModel, without TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, run_entry

from sentiment import artifacts
from sentiment.data import fast_tokenizer
from sentiment.errors import ModelError
from sentiment.export import litert_twin, prediction, savedmodel
from sentiment.serving import exports, litert_engine, model_files
from sentiment.serving import reviews as reading
from sentiment.training import experiment

REVIEWS = [
    "A great, wonderful film!",
    "awful boring worst plot",
    "the movie",
    "Don’t miss it: it’s SUPERB<br /><br />and the story… wonderful?!",
    "Café, naïve — ÜBER brilliant 😀 電影 great",
    "never seen these words",
    " ".join(["great"] * 5 + ["awful", "terrible", "boring"] * 30),  # longer than max_len: truncation matters
    " ".join(["awful"] * 40 + ["great", "wonderful"] * 20),
]


def litert_and_savedmodel(version: Path, reviews: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """P(positive) of ``reviews`` from both engines of one exported version."""
    return litert_engine.LiteRTPredictor(version).probabilities(reviews), prediction.Predictor(version).probabilities(reviews)


def assert_engines_agree(version: Path, reviews: list[str]) -> None:
    """Probabilities within 1e-4 and identical labels."""
    lite, saved = litert_and_savedmodel(version, reviews)
    np.testing.assert_allclose(lite, saved, atol=1e-4, rtol=0)
    assert [reading.label_for(p, 0.5) for p in lite] == [reading.label_for(p, 0.5) for p in saved]


def digests(version: Path) -> dict[str, dict]:
    """Size and checksum of every file of an exported version."""
    return {str(p.relative_to(version)): model_files.file_digest(p) for p in sorted(version.rglob("*")) if p.is_file()}


@pytest.fixture
def version_copy(saved_model, tmp_path) -> Path:
    """A private copy of the shared exported lstm/1 (with its LiteRT twin), safe to damage."""
    copy = tmp_path / "models"
    shutil.copytree(saved_model, copy)
    return copy / "lstm" / "1"


def test_lstm_litert_matches_savedmodel(saved_model):
    version = saved_model / "lstm" / "1"
    manifest = json.loads((version / artifacts.LITERT_DIR / artifacts.LITERT_MANIFEST).read_text())
    assert manifest["output"] == "probability" and manifest["truncate"] == "tail" and manifest["max_len"] == 32
    assert manifest["check"]["max_abs_difference"] <= litert_engine.TOLERANCE
    assert_engines_agree(version, REVIEWS + ["<br />..."])  # no words: the SavedModel's all-padding row


@pytest.mark.slow  # end to end, tens of seconds: with the slow tests (CI runs both)
def test_wide_lstm_litert_matches_savedmodel_and_can_be_added_later(tiny_config, tmp_path):
    """A wide model: the deep branch in LiteRT, the TF-IDF branch in NumPy; also rebuilt from the SavedModel alone."""
    config = tiny_config("wide_lstm", ngram_vocab_size=300, epochs=2, learning_rate=0.02)
    version = savedmodel.export_run(experiment.run(config, tmp_path / "run", verbose=0), tmp_path / "models")
    assets = version / artifacts.LITERT_DIR
    manifest = json.loads((assets / artifacts.LITERT_MANIFEST).read_text())
    assert manifest["output"] == "deep_logit" and set(manifest["files"]) == {"classifier.tflite", "vocabulary.txt", "ngram_index.npz", "wide.npz"}
    reviews = REVIEWS + ["great great great film", "the film the film the film was great and the plot was awful"]
    assert_engines_agree(version, reviews)

    with np.load(assets / "wide.npz", allow_pickle=False) as arrays:
        exported = {k: arrays[k] for k in arrays.files}
    for name in manifest["files"]:
        (assets / name).unlink()
    (assets / artifacts.LITERT_MANIFEST).unlink()
    litert_twin.add_litert(version)  # from the SavedModel's variables and lookup tables
    with np.load(assets / "wide.npz", allow_pickle=False) as arrays:
        for key, value in exported.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    assert_engines_agree(version, reviews)


def test_batches_of_any_size_give_what_each_review_gives_alone(saved_model):
    """Length-sorted batches of the model's fixed size, padded, a short last one filled with padding rows; none, one, many."""
    from conftest import make_reviews

    version = saved_model / "lstm" / "1"
    predictor = litert_engine.LiteRTPredictor(version, workers=1)
    assert predictor.classifier.batch == litert_twin.BATCH
    reviews = [t for t, _ in make_reviews(2 * litert_twin.BATCH + 7, seed=9)] + REVIEWS
    together = predictor.probabilities(reviews)
    alone = np.array([predictor.probabilities([r])[0] for r in reviews[:: 9]])
    np.testing.assert_allclose(together[:: 9], alone, atol=1e-6)
    assert predictor.probabilities([]).shape == (0,)
    assert_engines_agree(version, reviews)


@pytest.mark.parametrize("n", [1, 2, 32, 33, 63, 64, 65, 200])
def test_the_single_review_path_gives_what_the_batched_path_gives(saved_model, n):
    """Calls of at most SINGLE_MAX reviews run one review at a time on the single-review model; the rest batched: the same numbers."""
    from conftest import make_reviews

    assets = saved_model / "lstm" / "1" / artifacts.LITERT_DIR
    classifier = litert_engine.load_classifier(assets)
    batched_only = litert_engine.load_classifier(assets)
    batched_only._single = None  # the engine's batched path for every call, as for a twin made without the single-review model
    token_ids = [classifier.tokenizer.encode(r).token_ids for r, _ in make_reviews(n, seed=n)]
    single = np.concatenate([classifier.branch_outputs([ids]) for ids in token_ids])  # one review a call: the single-review model
    batched = batched_only.branch_outputs(token_ids)
    np.testing.assert_allclose(single, batched, atol=1e-6)  # the two converted models agree, review by review
    np.testing.assert_allclose(classifier.branch_outputs(token_ids), batched, atol=1e-6)  # whichever path a call of n takes


def test_a_twin_without_a_group_spread_runs_a_few_reviews_as_one_call(saved_model):
    """group_spread None (a branch cheap per row): up to SINGLE_MAX reviews of any lengths in one padded call; the same numbers."""
    from conftest import make_reviews

    assets = saved_model / "lstm" / "1" / artifacts.LITERT_DIR
    grouped, together = litert_engine.load_classifier(assets), litert_engine.load_classifier(assets)
    together.group_spread = None
    token_ids = [grouped.tokenizer.encode(r).token_ids for r, _ in make_reviews(litert_engine.SINGLE_MAX, seed=4)]
    assert len({len(ids) for ids in token_ids}) > 3  # lengths spread well beyond GROUP_SPREAD
    calls = []
    run = together._single.run
    together._single.run = lambda ids: calls.append(ids.shape) or run(ids)
    np.testing.assert_allclose(together.branch_outputs(token_ids), grouped.branch_outputs(token_ids), atol=1e-6)
    assert len(calls) == 1 and calls[0][0] == len(token_ids)


def test_the_fast_engine_gives_the_savedmodel_output_for_calls_of_any_size(saved_model):
    """The plain-loop twin (single-review and batched models) against the SavedModel's serving signature, call sizes around both switches."""
    from conftest import make_reviews

    version = saved_model / "lstm" / "1"
    predictor, saved = litert_engine.LiteRTPredictor(version, workers=1), prediction.Predictor(version)
    reviews = [t for t, _ in make_reviews(200, seed=5)]
    expected = saved.probabilities(reviews)
    for n in (1, 2, 63, 64, 65, 200):
        np.testing.assert_allclose(predictor.probabilities(reviews[:n]), expected[:n], atol=1e-5, rtol=0)


def test_a_token_budget_splits_batches_and_changes_no_output(saved_model, monkeypatch):
    """Long reviews go fewer to a call (the loop holds a batch's input products whole): the same numbers, in order."""
    from conftest import make_reviews

    classifier = litert_engine.load_classifier(saved_model / "lstm" / "1" / artifacts.LITERT_DIR)
    token_ids = [classifier.tokenizer.encode(r).token_ids for r, _ in make_reviews(100, seed=3)]
    whole = classifier.branch_outputs(token_ids)
    calls = []
    run = classifier._batched.run
    monkeypatch.setattr(classifier._batched, "run", lambda ids: calls.append(ids.shape) or run(ids))
    monkeypatch.setattr(litert_engine, "BATCH_TOKENS", 40)
    np.testing.assert_allclose(classifier.branch_outputs(token_ids), whole, atol=1e-6)
    assert len(calls) > 2 and all(rows == 1 or rows * width <= 40 for rows, width in calls)


def test_worker_processes_give_what_one_process_gives(saved_model):
    """Large calls are shared between forked workers; the answers, in order, do not change, and close() stops them."""
    from conftest import make_reviews

    version = saved_model / "lstm" / "1"
    reviews = [t for t, _ in make_reviews(litert_engine.PARALLEL_MIN + 50, seed=11)]
    one = litert_engine.LiteRTPredictor(version, workers=1).probabilities(reviews)
    shared = litert_engine.LiteRTPredictor(version, workers=2)
    # Equal to float rounding: a worker's batches hold other reviews, and the kernel's sums may round differently by batch shape.
    np.testing.assert_allclose(shared.probabilities(reviews), one, atol=1e-6, rtol=0)
    pool = shared._pool
    assert pool is not None and len(pool._pool) == 2
    shared.close()
    assert shared._pool is None
    np.testing.assert_allclose(shared.probabilities(reviews[:10]), one[:10], atol=1e-6, rtol=0)  # small calls stay in this process
    assert litert_engine.LiteRTPredictor(version).workers == len(os.sched_getaffinity(0))  # default: one per core


def test_wide_branch_in_numpy_equals_the_keras_layers():
    from sentiment.data.preprocessing import NgramTfIdf

    rng = np.random.default_rng(0)
    size, scale = 50, 40.0
    idf = rng.uniform(1, 5, size).astype(np.float32)
    idf[:2] = 0.0
    ids = keras.Input(shape=(None,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(1)(NgramTfIdf(size, scale, idf)(ids)))
    kernel, bias = model.layers[-1].get_weights()
    wide = litert_engine.WideBranch(idf, kernel.reshape(-1), float(bias[0]), scale)
    for n in (1, 3, 40):
        row = rng.integers(1, size, size=n).astype(np.int32)
        assert wide.logits([row])[0] == pytest.approx(float(model(row[None, :])[0, 0]), abs=1e-5)
    assert wide.logits([np.array([1, 1], np.int32)])[0] == pytest.approx(float(bias[0]), abs=1e-6)  # only OOV n-grams
    rows = [rng.integers(1, size, size=n).astype(np.int32) for n in (0, 1, 5, 40, 3)] + [np.array([7, 7, 7], np.int32)]
    np.testing.assert_allclose(wide.logits(rows), [wide.logits([row])[0] for row in rows], rtol=1e-12, atol=1e-12)  # all at once


def test_add_litert_leaves_the_savedmodel_untouched(version_copy):
    assets = version_copy / artifacts.LITERT_DIR
    for name in json.loads((assets / artifacts.LITERT_MANIFEST).read_text())["files"]:
        (assets / name).unlink()
    (assets / artifacts.LITERT_MANIFEST).unlink()
    (assets / ".litert-999999999-dead").mkdir()  # left by a killed run: removed
    before = digests(version_copy)
    assert not litert_engine.has_litert(version_copy)
    assert litert_twin.add_litert(version_copy) == assets / artifacts.LITERT_MANIFEST
    after = digests(version_copy)
    unchanged = lambda k: not k.startswith("assets.extra/.litert-") and k != model_files.CHECKSUMS_FILE  # noqa: E731  (checksums: rewritten last)
    assert {k: v for k, v in after.items() if k in before and unchanged(k)} == {k: v for k, v in before.items() if unchanged(k)}
    assert sorted(p.name for p in assets.iterdir()) == ["checksums.json", "classifier.tflite", "litert.json", "metadata.json",
                                                        "tf_serving_warmup_requests", "vocabulary.txt"]
    model_files.verify_files(version_copy)  # the new checksums cover the new files
    assert_engines_agree(version_copy, REVIEWS)


def test_add_litert_replaces_an_older_twin_whole(version_copy):
    """A twin of two models (Keras' conversion: batched and single) is replaced by the one plain-loop model; the old file goes."""
    assets = version_copy / artifacts.LITERT_DIR
    shutil.copy(assets / "classifier.tflite", assets / "classifier_single.tflite")
    single = {"classifier_single.tflite": model_files.file_digest(assets / "classifier_single.tflite")}
    edit_manifest(version_copy, lambda m: {**m, "single": "classifier_single.tflite", "files": {**m["files"], **single}})
    assert litert_engine.read_manifest(assets)["single"] == "classifier_single.tflite"
    litert_twin.add_litert(version_copy)
    assert not (assets / "classifier_single.tflite").exists()
    model_files.verify_files(version_copy)
    assert_engines_agree(version_copy, REVIEWS)


def test_add_litert_refuses_what_is_not_an_export(tmp_path):
    with pytest.raises(ModelError, match="no saved_model.pb"):
        litert_twin.add_litert(tmp_path)


def test_damaged_or_missing_litert_files_are_model_errors(version_copy):
    assets = version_copy / artifacts.LITERT_DIR
    model = assets / "classifier.tflite"
    whole = model.read_bytes()
    model.write_bytes(whole[:1000])
    with pytest.raises(ModelError, match="classifier.tflite is damaged"):
        litert_engine.LiteRTPredictor(version_copy)
    model.write_bytes(whole)
    (assets / "vocabulary.txt").unlink()
    with pytest.raises(ModelError, match="vocabulary.txt is missing"):
        litert_engine.LiteRTPredictor(version_copy)
    (assets / artifacts.LITERT_MANIFEST).write_text("{trunc")
    with pytest.raises(ModelError, match="litert.json is damaged or edited"):
        litert_engine.LiteRTPredictor(version_copy)
    (assets / artifacts.LITERT_MANIFEST).unlink()
    with pytest.raises(ModelError, match="--add-litert"):
        litert_engine.LiteRTPredictor(version_copy)


def test_engine_choice(version_copy, monkeypatch):
    assert exports.choose_engine("auto", version_copy) == "litert"  # batched, LiteRT is the faster engine at every size
    assert exports.choose_engine("litert", version_copy) == "litert"
    assert exports.choose_engine("savedmodel", version_copy) == "savedmodel"
    monkeypatch.setattr(litert_engine, "litert_installed", lambda: False)
    assert exports.choose_engine("auto", version_copy) == "savedmodel"
    with pytest.raises(Exception, match="pip install ai-edge-litert"):
        exports.choose_engine("litert", version_copy)
    monkeypatch.undo()
    (version_copy / artifacts.LITERT_DIR / artifacts.LITERT_MANIFEST).unlink()
    assert exports.choose_engine("auto", version_copy) == "savedmodel"
    with pytest.raises(ModelError, match="has no LiteRT model"):
        exports.choose_engine("litert", version_copy)


def test_predict_gives_the_same_output_and_messages_with_both_engines(saved_model, tmp_path, capsys, caplog):
    file = tmp_path / "reviews.txt"
    huge = "START " + "great " * 20_000 + "awful THE END"  # over MAX_REVIEW_CHARS: cut at the tail the model reads
    file.write_bytes("\n".join([*REVIEWS, "", "<br />...", huge]).encode() + b"\n\xff bad bytes\n")
    results = {}
    for engine in ("litert", "savedmodel"):
        caplog.clear()
        with caplog.at_level("WARNING"):
            code, out, err = run_entry("predict.py", ["--models-dir", str(saved_model), "--model", "lstm", "--file", str(file), "--format", "json",
                                                      "--engine", engine, "--verbose"], capsys)
        assert code == 0, err
        assert f"({engine}): {len(REVIEWS) + 1} reviews" in err
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["line"] for r in rows] == list(range(1, len(REVIEWS) + 5))  # one row per input line, the skipped ones too
        messages = [r["error"] for r in rows if "error" in r] + [r.getMessage() for r in caplog.records]
        results[engine] = [r for r in rows if "error" not in r], messages
    (lite, lite_messages), (saved, saved_messages) = results["litert"], results["savedmodel"]
    assert [(r["text"], r["label"]) for r in lite] == [(r["text"], r["label"]) for r in saved]
    np.testing.assert_allclose([r["probability"] for r in lite], [r["probability"] for r in saved], atol=1e-4)
    assert lite_messages == saved_messages
    for expected in ("empty review", "no words", "not valid UTF-8", "only the last 100000"):
        assert any(expected in line for line in lite_messages), expected


def test_auto_falls_back_to_the_savedmodel_when_litert_files_are_damaged(version_copy, capsys, caplog):
    model = version_copy / artifacts.LITERT_DIR / "classifier.tflite"
    model.write_bytes(model.read_bytes()[:-10])
    with caplog.at_level("WARNING"):
        code, out, err = run_entry("predict.py", ["--model", str(version_copy), "a great film"], capsys)
    assert code == 0 and "a great film" in out
    assert "is damaged" in caplog.text and "using the SavedModel instead" in caplog.text
    code, out, err = run_entry("predict.py", ["--model", str(version_copy), "--engine", "litert", "a great film"], capsys)
    assert code == 2 and out == "" and err.strip().splitlines()[-1].startswith("error: ") and "is damaged" in err


def run_predict_process(*args: str) -> subprocess.CompletedProcess:
    """Run predict.py in a fresh interpreter; it reports on stderr whether TensorFlow was imported."""
    # predict.py ends with os._exit (no teardown, no atexit): the report goes just before it.
    code = (
        "import os, runpy, sys\n"
        "end = os._exit\n"
        "os._exit = lambda code: (print('tensorflow imported:', 'tensorflow' in sys.modules, file=sys.stderr), sys.stderr.flush(), end(code))\n"
        f"sys.argv = ['predict.py', *{list(args)!r}]\n"
        "runpy.run_path('predict.py', run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_predict_litert_path_never_imports_tensorflow(saved_model):
    for engine in ("auto", "litert"):
        done = run_predict_process("--models-dir", str(saved_model), "--model", "lstm", "--engine", engine, "A great, wonderful film!", "awful boring")
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.splitlines()) == 2
        assert done.stderr.strip() == "tensorflow imported: False"  # nor LiteRT's C++ notices


def edit_manifest(version: Path, change) -> None:
    """Rewrite litert.json through ``change`` and re-sign the export's checksums, as a forger would."""
    path = version / artifacts.LITERT_DIR / artifacts.LITERT_MANIFEST
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    model_files.write_checksums(version)


@pytest.mark.parametrize("change, message", [
    (lambda m: {**m, "vocabulary": "../../../../../../etc/passwd"}, "'vocabulary' must name one of the files it lists"),
    (lambda m: {**m, "vocabulary": "/dev/zero", "files": {**m["files"], "/dev/zero": {"bytes": 1, "sha256": "0"}}}, "points outside"),
    (lambda m: {**m, "files": {**m["files"], "../../../../etc/passwd": {"bytes": 1, "sha256": "0"}}}, "points outside"),
    (lambda m: {**m, "vocabulary": 5}, "'vocabulary' must name one of the files it lists, not 5"),
    (lambda m: {**m, "files": list(m["files"])}, '"files" must be a JSON object'),
    (lambda m: {**m, "max_len": -250}, "max_len -250 is invalid"),
    (lambda m: {**m, "max_len": 10**12}, "max_len 1000000000000 is invalid"),
    (lambda m: {**m, "truncate": "middle"}, "truncate 'middle' is invalid"),
    (lambda m: {**m, "group_spread": 0.5}, "group_spread 0.5 is invalid"),
    (lambda m: {**m, "group_spread": "all"}, "group_spread 'all' is invalid"),
    (lambda m: {**m, "truncate": "head"}, "disagree on which end"),
    (lambda m: [m], "must hold a JSON object, not list"),
])
def test_a_manifest_that_reaches_outside_or_holds_bad_fields_is_refused(version_copy, change, message):
    edit_manifest(version_copy, change)
    with pytest.raises(ModelError, match=message):
        litert_engine.LiteRTPredictor(version_copy, workers=1)


def test_a_listed_file_that_is_a_symlink_out_is_refused(version_copy):
    vocabulary = version_copy / artifacts.LITERT_DIR / "vocabulary.txt"
    vocabulary.unlink()
    vocabulary.symlink_to("/etc/passwd")
    with pytest.raises(ModelError, match="leads outside"):
        litert_engine.LiteRTPredictor(version_copy, workers=1)


WIDE = {"idf": np.ones(5, np.float32), "kernel": np.arange(5, dtype=np.float32), "bias": np.float32(0.5), "scale": np.float32(2.0)}


@pytest.mark.parametrize("change", [
    {"kernel": np.zeros(3, np.float32)},  # shorter than idf: an IndexError on the first review with a later n-gram
    {"idf": np.ones((5, 5), np.float32)},
    {"idf": np.zeros(0, np.float32), "kernel": np.zeros(0, np.float32)},
    {"bias": np.zeros(2, np.float32)},
    {"scale": np.float32("nan")},  # every answer NaN
    {"kernel": np.array([0, 1, np.inf, 3, 4], np.float32)},
    {"kernel": np.array(list("abcde"))},
], ids=["kernel shorter", "idf a matrix", "empty", "bias a vector", "scale nan", "kernel inf", "kernel strings"])
def test_a_wide_branch_of_bad_shapes_or_values_is_refused_when_loaded(tmp_path, change):
    path = tmp_path / litert_engine.WIDE_FILE
    np.savez(path, **WIDE)
    assert litert_engine.load_wide_branch(path).logits([np.array([2, 3])])[0] == pytest.approx(2.0 * (2 + 3) / np.sqrt(2) + 0.5)
    np.savez(path, **{**WIDE, **change})
    with pytest.raises(ModelError, match="wide.npz is refused"):
        litert_engine.load_wide_branch(path)


def test_an_ngram_index_pointing_outside_its_vocabulary_or_wide_branch_is_refused():
    vocabulary, ngrams = ["", "[UNK]", "good", "film"], ["", "[UNK]", "good", "film", "good film", "film good"]
    words = fast_tokenizer.WordIds.build(vocabulary, ngrams)
    litert_engine.check_ids(words, len(vocabulary), len(ngrams), Path("m"))
    for name, bad in [("token_ids", len(vocabulary)), ("unigram_ids", len(ngrams)), ("unigram_ids", -1), ("pair_ids", len(ngrams))]:
        damaged = fast_tokenizer.WordIds.build(vocabulary, ngrams)
        getattr(damaged, name)[0] = bad  # a negative id would silently read the wide branch's last weight
        with pytest.raises(ModelError, match=f"{name} are not whole numbers"):
            litert_engine.check_ids(damaged, len(vocabulary), len(ngrams), Path("m"))
    words.pair_keys = words.pair_keys[::-1].copy()  # unsorted: searchsorted would silently miss pairs
    with pytest.raises(ModelError, match="pair_keys are not sorted"):
        litert_engine.check_ids(words, len(vocabulary), len(ngrams), Path("m"))
