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

from sentiment.artifacts import SIGNATURE, read_json
from sentiment.config import Config
from sentiment.errors import ModelError, first_line
from sentiment.evaluation import calibration
from sentiment.rundir import RunDir
from sentiment.serving import export_metadata, graph_ops, model_files
from sentiment.serving.exports import resolve_model

if TYPE_CHECKING:
    from sentiment.evaluation.scoring import Scorer

log = logging.getLogger(__name__)


class Predictor:
    """A loaded SavedModel's ``serving_default`` signature and its metadata."""

    engine = "savedmodel"

    def __init__(self, path: Path, trust_model: bool = False):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        self.path = path
        if not (path / "variables").is_dir():
            raise ModelError(f"cannot load model {path}: its variables/ folder is missing (an incomplete copy?)")
        check_before_loading(path, trust_model)
        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures[SIGNATURE]
        except (OSError, KeyError, ValueError, IndexError, tf.errors.OpError, DecodeError) as e:  # DecodeError: a truncated saved_model.pb; IndexError: truncated variables
            raise ModelError(f"cannot load model {path}: {first_line(e)}") from e
        self._loaded = loaded  # keeps the signature's variables alive
        self.metadata = export_metadata.read_metadata(path)
        # Which end of a long review the model reads (older exports: the head).
        self.keeps_tail = export_metadata.keeps_tail(self.metadata)
        # The signature returns calibrated probabilities and labels at this threshold (exports before calibration: 0.5).
        self.threshold = export_metadata.calibration_of(self.metadata, path)[1]

    def close(self) -> None:
        """Nothing to stop (the LiteRT engine's face has worker processes to stop)."""

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Return P(positive) float32 [n] for raw review strings."""
        import tensorflow as tf

        out = self._fn(text=tf.constant(texts, dtype=tf.string))
        return out["probability"].numpy().astype(np.float32)


def check_before_loading(path: Path, trust_model: bool = False) -> None:
    """Refuse ops outside the allowlist (unless trusted), then verify the files the SavedModel engine reads against the export's checksums."""
    if not trust_model:
        graph_ops.check_ops(path)  # a forged folder can carry checksums that hold: the graph is what says what it would do
    model_files.verify_files(path, model_files.savedmodel_files(path), trust_model)


def load_scorer(spec: str, models_dir: str | Path, trust_model: bool = False) -> tuple[Scorer, Config, str, float]:
    """Return a raw-text scorer (calibrated), the model's training config, a display name and its threshold, for a run dir or an exported model."""
    from sentiment import models
    from sentiment.evaluation import scoring

    run = RunDir(Path(spec))
    if run.config.exists() and not run.model.exists() and not (run.path / "saved_model.pb").exists():
        raise ModelError(f"{spec} is a training run that did not finish (no model.keras yet); "
                         "rerun its train.py command with the same --run-dir to resume it")
    if run.model.exists() and run.config.exists():
        calibrated = calibration.carried(read_json(run.metrics) if run.metrics.exists() else {})
        scorer = scoring.model_scorer(models.load_model(run.model), calibrated["temperature"])
        return scorer, run.load_config(), f"run {spec}", float(calibrated["threshold"])
    predictor = Predictor(resolve_model(spec, models_dir), trust_model)
    config = export_metadata.training_config(predictor.metadata, predictor.path)
    return predictor.probabilities, config, f"model {predictor.path}", predictor.threshold
