"""An export's ``assets.extra/metadata.json``, checked: the one place every engine reads its config, truncation and calibration from.

The LiteRT engine (here) and the SavedModel engine (``sentiment.export.prediction``) both read it through
``read_metadata`` and ``calibration_of``, so a bad field is refused by both alike and they cannot
disagree about the temperature or threshold.
"""

from __future__ import annotations

from pathlib import Path

from sentiment.artifacts import METADATA_FILE
from sentiment.config import Config
from sentiment.errors import ConfigError, ModelError
from sentiment.evaluation import calibration
from sentiment.serving import model_files


def read_metadata(version_dir: str | Path) -> dict:
    """Return an export's metadata.json ({} if it has none), refusing a non-object, an invalid config or calibration."""
    path = Path(version_dir) / METADATA_FILE
    if not path.exists():
        return {}
    metadata = model_files.read_object(path)
    if "config" in metadata:
        try:
            Config.from_dict(metadata["config"])
        except ConfigError as e:
            raise ModelError(f"{path}: its training config is invalid: {e}") from e
    calibration.carried(metadata, str(path))
    return metadata


def keeps_tail(metadata: dict) -> bool:
    """Return True if the model reads the end of a long review (older exports, without the setting: the head)."""
    return metadata.get("config", {}).get("truncate") == "tail"


def calibration_of(metadata: dict, version_dir: str | Path) -> tuple[float, float]:
    """Return the export's checked (temperature, threshold): the identity for exports made before calibration."""
    calibrated = calibration.carried(metadata, str(Path(version_dir) / METADATA_FILE))
    return calibrated["temperature"], calibrated["threshold"]


def training_config(metadata: dict, version_dir: str | Path) -> Config:
    """Return the training config an export carries (a ModelError if it has none)."""
    if "config" not in metadata:
        raise ModelError(f"{version_dir} has no training config in its metadata")
    return Config.from_dict(metadata["config"])
