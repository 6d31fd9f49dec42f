"""An export's metadata.json is read through one checked place: a bad field is a one-line ModelError in both engines alike."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_entry

from sentiment import artifacts
from sentiment.errors import ModelError
from sentiment.export import prediction
from sentiment.serving import export_metadata, litert_engine, model_files


@pytest.fixture
def version_copy(saved_model, tmp_path):
    """A private copy of the shared exported lstm/1, safe to edit."""
    shutil.copytree(saved_model, tmp_path / "models")
    return tmp_path / "models" / "lstm" / "1"


def edit_metadata(version, change) -> None:
    """Rewrite metadata.json through ``change`` and re-sign the checksums, as a forger would."""
    path = version / artifacts.METADATA_FILE
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    model_files.write_checksums(version)


@pytest.mark.parametrize("change, message", [
    (lambda m: [m], "must hold a JSON object, not list"),
    (lambda m: {**m, "calibration": {**m.get("calibration", {}), "temperature": "warm"}}, "temperature 'warm' is invalid"),
    (lambda m: {**m, "calibration": {**m.get("calibration", {}), "temperature": -1.3}}, "temperature -1.3 is invalid"),
    (lambda m: {**m, "calibration": {**m.get("calibration", {}), "temperature": 0}}, "temperature 0 is invalid"),
    (lambda m: {**m, "calibration": {"temperature": 1.0, "threshold": 1.5}}, "threshold 1.5 is invalid"),
    (lambda m: {**m, "calibration": [1]}, "calibration must be a JSON object"),
    (lambda m: {**m, "config": {**m["config"], "max_len": -250}}, "max_len=-250 is invalid"),
    (lambda m: {**m, "config": {**m["config"], "model": "../../../../tmp/x"}}, "model='../../../../tmp/x' is invalid"),
    (lambda m: {**m, "config": "lstm"}, "config must be a JSON object"),
])
def test_a_bad_field_is_refused_by_both_engines(version_copy, change, message):
    edit_metadata(version_copy, change)
    with pytest.raises(ModelError, match=message):
        export_metadata.read_metadata(version_copy)
    with pytest.raises(ModelError, match=message):
        litert_engine.LiteRTPredictor(version_copy, workers=1)
    with pytest.raises(ModelError, match=message):
        prediction.Predictor(version_copy)


def test_predict_says_it_in_one_line(version_copy, capsys):
    edit_metadata(version_copy, lambda m: {**m, "calibration": {"temperature": float("nan"), "threshold": 0.5}})
    for engine in ("litert", "savedmodel", "auto"):
        code, out, err = run_entry("predict.py", ["--model", str(version_copy), "--engine", engine, "a great film"], capsys)
        assert code == 2 and out == "" and err.startswith("error: ") and "temperature nan is invalid" in err, (engine, err)


def test_an_edited_metadata_file_without_new_checksums_is_named(version_copy):
    path = version_copy / artifacts.METADATA_FILE
    path.write_text(path.read_text().replace('"threshold"', '"threshold" ', 1))
    with pytest.raises(ModelError, match="metadata.json is damaged or edited"):
        litert_engine.LiteRTPredictor(version_copy, workers=1)


def test_both_engines_read_the_same_calibration(version_copy):
    edit_metadata(version_copy, lambda m: {**m, "calibration": {"method": "temperature", "temperature": 2.0, "threshold": 0.3}})
    lite = litert_engine.LiteRTPredictor(version_copy, workers=1)
    assert (lite.temperature, lite.threshold) == (2.0, 0.3) == export_metadata.calibration_of(lite.metadata, version_copy)
    assert prediction.Predictor(version_copy).threshold == 0.3
