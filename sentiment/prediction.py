"""The TensorFlow side of prediction: the SavedModel engine, and any model (run or export) as a scorer for evaluate.py.

The engine-agnostic, TensorFlow-free rest (reading reviews, classifying, formatting, choosing
the engine, the LiteRT engine) is :mod:`sentiment.serving`. TensorFlow loads only when a
``Predictor`` is made, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentiment import calibration
from sentiment.artifacts import METADATA_FILE, SIGNATURE, read_json
from sentiment.config import Config
from sentiment.errors import ModelError, first_line
from sentiment.rundir import RunDir
from sentiment.serving.exports import resolve_model

if TYPE_CHECKING:
    from sentiment.evaluation import Scorer

log = logging.getLogger(__name__)


class Predictor:
    """A loaded SavedModel's ``serving_default`` signature and its metadata."""

    engine = "savedmodel"

    def __init__(self, path: Path):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        self.path = path
        if not (path / "variables").is_dir():
            raise ModelError(f"cannot load model {path}: its variables/ folder is missing (an incomplete copy?)")
        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures[SIGNATURE]
        except (OSError, KeyError, ValueError, IndexError, tf.errors.OpError, DecodeError) as e:  # DecodeError: a truncated saved_model.pb; IndexError: truncated variables
            raise ModelError(f"cannot load model {path}: {first_line(e)}") from e
        self._loaded = loaded  # keeps the signature's variables alive
        meta = path / METADATA_FILE
        self.metadata = read_json(meta) if meta.exists() else {}
        # Which end of a long review the model reads (older exports: the head).
        self.keeps_tail = self.metadata.get("config", {}).get("truncate") == "tail"
        # The signature returns calibrated probabilities and labels at this threshold (exports before calibration: 0.5).
        self.threshold = float(calibration.carried(self.metadata)["threshold"])

    def close(self) -> None:
        """Nothing to stop (the LiteRT engine's face has worker processes to stop)."""

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) float32 [n] for raw review strings."""
        import tensorflow as tf

        out = self._fn(text=tf.constant(texts, dtype=tf.string))
        return out["probability"].numpy().astype(np.float32)


def load_scorer(spec: str, models_dir: str | Path) -> tuple[Scorer, Config, str, float]:
    """Return a raw-text scorer (calibrated), the model's training config, a display name and its threshold, for a run dir or an exported model."""
    from sentiment import evaluation, models

    run = RunDir(Path(spec))
    if run.config.exists() and not run.model.exists() and not (run.path / "saved_model.pb").exists():
        raise ModelError(f"{spec} is a training run that did not finish (no model.keras yet); "
                         "rerun its train.py command with the same --run-dir to resume it")
    if run.model.exists() and run.config.exists():
        calibrated = calibration.carried(read_json(run.metrics) if run.metrics.exists() else {})
        scorer = evaluation.model_scorer(models.load_model(run.model), calibrated["temperature"])
        return scorer, run.load_config(), f"run {spec}", float(calibrated["threshold"])
    predictor = Predictor(resolve_model(spec, models_dir))
    if "config" not in predictor.metadata:
        raise ModelError(f"{predictor.path} has no training config in its metadata")
    return predictor.probabilities, Config.from_dict(predictor.metadata["config"]), f"model {predictor.path}", predictor.threshold
