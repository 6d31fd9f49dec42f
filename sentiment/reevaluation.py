"""Re-evaluate any finished run or exported model on any supported dataset."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from sentiment import artifacts, evaluation, input_pipeline, models, prediction
from sentiment.artifacts import CONFIG_FILE, MODEL_FILE
from sentiment.config import Config
from sentiment.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SPLITS = ("test", "validation", "train", "all")


def load_scorer(spec: str, models_dir: str | Path = "saved_models") -> tuple[evaluation.Scorer, Config, str]:
    """Return a raw-text scorer, the model's training config and a display name for a run dir or SavedModel."""
    path = Path(spec)
    if (path / MODEL_FILE).exists() and (path / CONFIG_FILE).exists():
        model = models.load_model(path / MODEL_FILE)
        scorer = lambda texts: model.predict(tf.constant(texts), verbose=0)  # noqa: E731
        return scorer, Config.load(path / CONFIG_FILE), f"run {path}"
    predictor = prediction.Predictor(prediction.resolve_model(spec, models_dir))
    if "config" not in predictor.metadata:
        raise ModelError(f"{predictor.path} has no training config in its metadata")
    return predictor.probabilities, Config.from_dict(predictor.metadata["config"]), f"model {predictor.path}"


def default_out_dir(spec: str, split: str, out: str | None = None, several: bool = False) -> Path:
    """Where a report goes: inside a run dir, else reports/; one subfolder per model under a shared --out."""
    name = f"{Path(spec).name}-{split}"
    if out:
        return Path(out) / name if several else Path(out)
    if artifacts.is_finished_run(Path(spec)):
        return Path(spec) / f"eval-{split}"
    return Path("reports") / name  # never inside a served SavedModel version


def select_split(splits: input_pipeline.Splits, split: str) -> input_pipeline.Split:
    """Return one split, or all reviews of the source for ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split != "all":
        return getattr(splits, split)
    parts = [s for _, s in splits.items()]
    return input_pipeline.Split(sum((p.texts for p in parts), []), np.concatenate([p.labels for p in parts]))


def reevaluate(spec: str, out_dir: Path, data: str | None = None, split: str = "test", models_dir: str | Path = "saved_models") -> Path:
    """Evaluate a run dir or exported model on ``data`` (default: its training data); write a report to ``out_dir``."""
    scorer, config, name = load_scorer(spec, models_dir)
    # The split settings of training apply, so "test" is the same held-out part it never saw.
    data_config = dataclasses.replace(config, data=data or config.data, max_examples=0)
    chosen = select_split(input_pipeline.load_splits(data_config), split)
    log.info("evaluating %s on %d %s reviews of %s", name, len(chosen), split, data_config.data)
    probs = evaluation.score_in_length_order(scorer, chosen.texts)
    lengths = input_pipeline.token_lengths(chosen.texts)
    report = evaluation.evaluate_predictions(chosen.texts, chosen.labels, probs, lengths, config.max_len)
    report.update({"model": config.model, "evaluated": name, "split": split, "data": data_config.data})
    return evaluation.write_report(out_dir, f"{config.model} ({name}) on {data_config.data}, {split} split", report, chosen.labels, probs)
