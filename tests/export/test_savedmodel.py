"""SavedModel export: TF Serving layout, the named signature contract, atomicity, fidelity."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sentiment import artifacts
from sentiment.errors import DataError, ModelError
from sentiment.evaluation import calibration
from sentiment.export import savedmodel
from sentiment.training import experiment

REVIEWS = ["A great, wonderful film!", "awful boring worst plot", "the movie"]


def test_export_uses_serving_layout_and_next_version(run_dir, tmp_path):
    first = savedmodel.export_run(run_dir, tmp_path)
    second = savedmodel.export_run(run_dir, tmp_path)
    assert first == tmp_path / "lstm" / "1" and second == tmp_path / "lstm" / "2"
    assert (first / "saved_model.pb").exists()
    assert sorted(p.name for p in (tmp_path / "lstm").iterdir()) == ["1", "2"]  # no temp dirs left


def test_signature_contract(run_dir, tmp_path):
    loaded = tf.saved_model.load(str(savedmodel.export_run(run_dir, tmp_path)))
    fn = loaded.signatures[artifacts.SIGNATURE]
    (_, inputs) = fn.structured_input_signature
    assert list(inputs) == ["text"]
    assert inputs["text"].dtype == tf.string and inputs["text"].shape.as_list() == [None]
    assert set(fn.structured_outputs) == {"probability", "label"}
    out = fn(text=tf.constant(REVIEWS))
    assert out["probability"].dtype == tf.float32 and out["probability"].shape == (3,)
    labels = [b.decode() for b in out["label"].numpy()]
    assert labels == ["positive" if p >= 0.5 else "negative" for p in out["probability"].numpy()]


def test_export_matches_keras_model_calibrated_as_its_run_says(run_dir, tmp_path):
    keras_probs = keras.saving.load_model(run_dir / "model.keras").predict(tf.constant(REVIEWS), verbose=0).reshape(-1)
    version = savedmodel.export_run(run_dir, tmp_path)
    fitted = json.loads((run_dir / "metrics.json").read_text())["calibration"]
    assert json.loads((version / artifacts.METADATA_FILE).read_text())["calibration"]["temperature"] == fitted["temperature"]
    fn = tf.saved_model.load(str(version)).signatures[artifacts.SIGNATURE]
    expected = calibration.apply_temperature(keras_probs, fitted["temperature"])
    np.testing.assert_allclose(fn(text=tf.constant(REVIEWS))["probability"].numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("temperature, threshold", [(1.0, 0.5), (2.0, 0.7), (0.5, 0.3)])
def test_signature_applies_temperature_and_threshold(run_dir, tmp_path, temperature, threshold):
    """What the signature returns is exactly what predict.py's LiteRT engine computes, labels at the export's threshold."""
    from sentiment import models

    model = models.load_model(run_dir / "model.keras")
    raw = model.predict(tf.constant(REVIEWS * 3), verbose=0).reshape(-1)
    calibrated = {"method": "temperature", "temperature": temperature, "threshold": threshold, "target": str(threshold)}
    savedmodel.write_savedmodel(model, tmp_path / "v", calibrated)
    out = tf.saved_model.load(str(tmp_path / "v")).signatures[artifacts.SIGNATURE](text=tf.constant(REVIEWS * 3))
    expected = calibration.apply_temperature(raw, temperature)
    np.testing.assert_allclose(out["probability"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert [b.decode() for b in out["label"].numpy()] == ["positive" if p >= threshold else "negative" for p in out["probability"].numpy()]


def test_metadata_travels_with_the_model(run_dir, tmp_path):
    meta = json.loads((savedmodel.export_run(run_dir, tmp_path) / artifacts.METADATA_FILE).read_text())
    assert meta["config"]["model"] == "lstm" and meta["max_len"] == 32 and meta["vocab_size"] == 64
    assert "accuracy" in meta["metrics"] and "tensorflow" in meta["versions"]
    assert "predictions" not in meta["metrics"]  # per-review test predictions stay in the run dir


def test_metadata_names_paths_by_file_name(run_dir, tmp_path):
    """An export says which data made it but carries no path of the exporting machine."""
    text = (savedmodel.export_run(run_dir, tmp_path) / artifacts.METADATA_FILE).read_text()
    meta = json.loads(text)
    assert meta["config"]["data"] == "r.csv" and meta["run_dir"] == "run"
    assert str(run_dir.parent) not in text


@pytest.mark.parametrize("argv, cut", [
    (["train.py", "--data", "/home/me/imdb.csv", "--seed", "1"], ["train.py", "--data", "imdb.csv", "--seed", "1"]),
    (["train.py", "--unlabelled=/srv/u/unsup.csv.gz"], ["train.py", "--unlabelled=unsup.csv.gz"]),
    (["train.py", "--data", "imdb", "--run-dir", "runs/x"], ["train.py", "--data", "imdb", "--run-dir", "runs/x"]),
])
def test_portable_cuts_absolute_paths(argv, cut):
    assert savedmodel.portable({"command": argv, "n": 3}) == {"command": cut, "n": 3}


def test_portable_leaves_text_outside_path_keys_alone():
    quoted = {"confident_mistakes": [{"text": "/10 is what I would give it"}], "data": {"source": "/srv/x/r.csv"}}
    assert savedmodel.portable(quoted) == {"confident_mistakes": [{"text": "/10 is what I would give it"}], "data": {"source": "r.csv"}}


def test_failed_export_leaves_nothing_behind(run_dir, tmp_path, monkeypatch):
    def explode(model, path, calibrated=None):
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(savedmodel, "write_savedmodel", explode)
    with pytest.raises(OSError, match="disk full"):
        savedmodel.export_run(run_dir, tmp_path)
    assert list((tmp_path / "lstm").iterdir()) == []


def test_export_of_unfinished_run_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not a finished run"):
        savedmodel.export_run(tmp_path, tmp_path / "out")


def test_next_version_ignores_non_numeric_entries(tmp_path):
    for name in ("1", "7", ".tmp-abc", "notes"):
        (tmp_path / name).mkdir()
    assert savedmodel.next_version(tmp_path) == 8


@pytest.mark.slow
def test_wide_model_refit_and_export_round_trip_on_raw_strings(tiny_config, tmp_path):
    """A wide LSTM trained with --refit: refit history, report, and a SavedModel equal to the Keras model."""
    from sentiment.rundir import RunDir
    from sentiment.training import fitting

    config = tiny_config("wide_lstm", ngram_vocab_size=300, refit=True, epochs=2, learning_rate=0.02, branches="joint")
    run = RunDir(experiment.run(config, tmp_path / "run", verbose=0))
    metrics = artifacts.read_json(run.metrics)
    refit = metrics["training"]["refit"]
    assert refit["epochs"] == metrics["training"]["best_epoch"] == len(fitting.read_history_file(run.refit_history))
    assert refit["reviews"] == metrics["data"]["sizes"]["train"] + metrics["data"]["sizes"]["validation"]
    assert 0 <= refit["test_accuracy_before"] <= 1
    assert "refit on train + validation" in (run.path / "report.md").read_text()
    assert not run.backup.exists() and not run.refit_backup.exists() and run.ngram_vocabulary.exists()

    reviews = REVIEWS + ["great great great film", "never seen these words"]
    keras_probs = keras.saving.load_model(run.model).predict(tf.constant(reviews), verbose=0).reshape(-1)
    fn = tf.saved_model.load(str(savedmodel.export_run(run.path, tmp_path / "models"))).signatures[artifacts.SIGNATURE]
    np.testing.assert_allclose(fn(text=tf.constant(reviews))["probability"].numpy(), keras_probs, rtol=1e-5, atol=1e-6)


def test_the_wide_ablation_model_trains_exports_and_serves_without_a_litert_model(tiny_config, tmp_path, monkeypatch):
    """`--model wide` (no recurrent part) runs the whole product path; its fast twin is the tokenizer and NumPy, no LiteRT model."""
    from sentiment.export import prediction
    from sentiment.serving import exports, litert_engine

    run = experiment.run(tiny_config("wide", ngram_vocab_size=300, epochs=3, learning_rate=0.05), tmp_path / "run", verbose=0)
    version = savedmodel.export_run(run, tmp_path / "models")
    assert version == tmp_path / "models" / "wide" / "1"
    assert artifacts.read_json(version / artifacts.METADATA_FILE)["config"]["model"] == "wide"
    assets = version / artifacts.LITERT_DIR
    manifest = artifacts.read_json(assets / artifacts.LITERT_MANIFEST)
    assert manifest["model"] is None and not (assets / litert_engine.MODEL_FILE).exists()
    assert manifest["format"] == litert_engine.NUMPY_ONLY_FORMAT  # a reader that expects a LiteRT model refuses it
    assert manifest["check"]["max_abs_difference"] <= litert_engine.TOLERANCE
    monkeypatch.setattr(litert_engine, "litert_installed", lambda: False)
    assert exports.choose_engine("auto", version) == exports.choose_engine("litert", version) == "litert"  # no ai-edge-litert needed
    reviews = REVIEWS + ["great wonderful excellent film", "awful terrible boring film"]
    fast = litert_engine.LiteRTPredictor(version, workers=1).probabilities(reviews)
    scorer, config, _, _ = prediction.load_scorer("wide", tmp_path / "models")  # through the SavedModel
    np.testing.assert_allclose(fast, scorer(reviews), atol=litert_engine.TOLERANCE)
    assert config.model == "wide" and fast[-2] > fast[-1]


def test_serving_signature_runs_large_requests_in_chunks(run_dir, tmp_path, monkeypatch):
    """Requests bigger than a chunk (and empty ones) give the same probabilities, in order, as the Keras model."""
    monkeypatch.setattr(savedmodel, "SERVING_CHUNK", 2)
    reviews = REVIEWS + ["great great film", "awful", "a film"]
    model = keras.saving.load_model(run_dir / "model.keras")
    savedmodel.write_savedmodel(model, tmp_path / "v")  # uncalibrated: the model's own probabilities
    fn = tf.saved_model.load(str(tmp_path / "v")).signatures[artifacts.SIGNATURE]
    np.testing.assert_allclose(fn(text=tf.constant(reviews))["probability"].numpy(), model.predict(tf.constant(reviews), verbose=0).reshape(-1),
                               rtol=1e-5, atol=1e-6)
    assert fn(text=tf.constant([], dtype=tf.string))["probability"].shape == (0,)


def test_exports_carry_tf_serving_warmup_requests_that_the_signature_answers(run_dir, tmp_path):
    """assets.extra/tf_serving_warmup_requests: PredictionLog records (TF Serving's protos) naming serving_default."""
    from tensorflow_serving.apis import prediction_log_pb2

    version = savedmodel.export_run(run_dir, tmp_path)
    records = list(tf.data.TFRecordDataset(str(version / artifacts.LITERT_DIR / savedmodel.WARMUP_FILE)).as_numpy_iterator())
    assert len(records) == len(savedmodel.WARMUP_REVIEWS)
    serve = tf.saved_model.load(str(version)).signatures[artifacts.SIGNATURE]
    for record, reviews in zip(records, savedmodel.WARMUP_REVIEWS):
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        assert request.model_spec.signature_name == artifacts.SIGNATURE and list(request.inputs) == ["text"]
        text = tf.make_ndarray(request.inputs["text"])
        assert [t.decode() for t in text] == list(reviews)
        assert serve(text=tf.constant(text))["probability"].shape == (len(reviews),)


def test_an_older_export_is_recalibrated_into_the_next_version(run_dir, tmp_path):
    """export_model.py --calibrate: same weights, a temperature fitted on its validation reviews, warm-up records, LiteRT twin."""
    from sentiment import models
    from sentiment.export import prediction
    from sentiment.rundir import RunDir
    from sentiment.serving import litert_engine, model_files

    root = tmp_path / "models" / "lstm"
    old = savedmodel.export_model(models.load_model(run_dir / "model.keras"), RunDir(run_dir).load_config(), root)  # uncalibrated, as before
    data = RunDir(run_dir).load_config().data  # the export records its file name only
    with pytest.raises(DataError, match="was trained on r.csv, which is not here: give its path with --data"):
        savedmodel.recalibrate(old)
    new = savedmodel.recalibrate(old, data)
    assert new == root / "2" and (new / artifacts.LITERT_DIR / savedmodel.WARMUP_FILE).is_file()
    assert str(tmp_path) not in (new / artifacts.METADATA_FILE).read_text()  # "recalibrated_from" included
    fitted = json.loads((new / artifacts.METADATA_FILE).read_text())["calibration"]
    assert fitted["method"] == "temperature" and {"ece_before", "ece_after"} <= set(fitted["test"])
    before = prediction.Predictor(old).probabilities(REVIEWS)
    after = prediction.Predictor(new).probabilities(REVIEWS)
    np.testing.assert_allclose(after, calibration.apply_temperature(before, fitted["temperature"]), atol=1e-5)
    np.testing.assert_allclose(litert_engine.LiteRTPredictor(new).probabilities(REVIEWS), after, atol=1e-4)
    meta = json.loads((new / artifacts.METADATA_FILE).read_text())
    meta.pop("calibration")  # metadata that no longer says what its signature does
    (new / artifacts.METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="metadata.json is damaged or edited"):  # the export's checksums name it first
        savedmodel.recalibrate(new, data)
    model_files.write_checksums(new)  # and with checksums forged to match, the rebuilt model still tells
    with pytest.raises(ModelError, match="differs from its SavedModel"):
        savedmodel.recalibrate(new, data)


def test_a_run_or_name_cannot_send_the_export_outside_the_models_dir(run_dir, tmp_path):
    import shutil


    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "model": "../../../../tmp/x"}))
    with pytest.raises(ModelError, match="model='../../../../tmp/x' is invalid"):
        savedmodel.export_run(run, tmp_path / "models")
    for name in ("../x", ".hidden", "a/b"):
        with pytest.raises(Exception, match="model name .* is invalid"):
            savedmodel.export_run(run_dir, tmp_path / "models", name)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_every_export_ends_with_checksums_of_all_its_files(saved_model):
    from sentiment.serving import model_files

    version = saved_model / "lstm" / "1"
    listed = json.loads((version / model_files.CHECKSUMS_FILE).read_text())["files"]
    assert sorted(listed) == model_files.version_files(version) and "saved_model.pb" in listed
    model_files.verify_files(version)
