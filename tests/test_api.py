"""The Python API (``sentiment.load(...).predict(...)``): predict.py's values, without TensorFlow, from an installed wheel too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

import sentiment
from sentiment.errors import ModelError

REVIEWS = ["This movie was wonderful, I loved every minute", "Worst film I have ever seen", "Not good at all, though the cast tries"]
SHIPPED = ROOT / "saved_models" / "wide_lstm" / "6"


def predict_py(*args: str) -> list[dict]:
    """predict.py's JSON rows for REVIEWS."""
    result = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--format", "json", *args, *REVIEWS], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def classifier():
    with sentiment.load(SHIPPED) as clf:
        yield clf


def test_predict_gives_predict_pys_labels_and_probabilities(classifier):
    rows = classifier.predict(REVIEWS)
    expected = predict_py("--model", str(SHIPPED))
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert [round(r["probability"], 4) for r in rows] == [round(e["probability"], 4) for e in expected]
    assert all(set(r) == {"label", "probability"} and 0 <= r["probability"] <= 1 for r in rows)


def test_explain_gives_predict_pys_reasons(classifier):
    rows = classifier.explain(REVIEWS[2:], k=2)
    expected = predict_py("--model", str(SHIPPED), "--explain", "2")[2]
    assert rows[0]["reasons"] == expected["reasons"]
    assert rows[0]["label"] == expected["label"] and len(rows[0]["reasons"]["negative"]) <= 2


def test_a_name_a_version_and_the_default_load_the_same_model():
    assert sentiment.load("wide_lstm/6").path == sentiment.load(SHIPPED).path
    assert sentiment.load().path.parent.name == "wide_lstm"  # the default model's newest version


def test_bad_input_is_a_one_line_error(classifier):
    with pytest.raises(ValueError, match="review 2: empty review"):
        classifier.predict(["fine", "  "])
    with pytest.raises(TypeError, match="list of reviews"):
        classifier.predict("a single string")
    with pytest.raises(ModelError, match="no model 'nope'"):
        sentiment.load("nope")


def test_threshold_overrides_the_models_own():
    with sentiment.load(SHIPPED, threshold=0.99) as strict:
        assert strict.predict(["This movie was wonderful"])[0]["label"] == "negative"  # P(positive) 0.93 is under 0.99


def test_importing_and_predicting_leaves_tensorflow_unloaded():
    code = (f"import sys, sentiment; clf = sentiment.load({str(SHIPPED)!r}); clf.predict(['a fine film']); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_wheel_installs_and_classifies_as_predict_py(tmp_path):
    """Build the wheel, install it (no dependencies: this venv has them) into a folder outside the checkout, use it from there."""
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    source = tmp_path / "source"  # built from a copy: setuptools leaves build/ and *.egg-info in the tree it builds
    shutil.copytree(ROOT / "sentiment", source / "sentiment", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = wheels.glob("imdb_sentiment-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, timeout=300, capture_output=True)
    code = (f"import json, sentiment; print(sentiment.__file__); "
            f"print(json.dumps(sentiment.load({str(SHIPPED)!r}).predict({REVIEWS!r})))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    installed_at, rows = result.stdout.splitlines()
    assert installed_at.startswith(str(target))  # the installed copy, not the checkout
    expected = predict_py("--model", str(SHIPPED))
    assert [(r["label"], round(r["probability"], 4)) for r in json.loads(rows)] == \
        [(e["label"], round(e["probability"], 4)) for e in expected]
    page = target / "sentiment" / "serving" / "page" / "index.html"
    assert page.is_file()  # the server's page ships in the wheel
    scripts = (next(target.glob("imdb_sentiment-*.dist-info")) / "entry_points.txt").read_text()
    assert "sentiment-predict = sentiment.commands.predict:run" in scripts
