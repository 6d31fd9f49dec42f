"""Finding an exported model (a version directory, a folder of versions, or a name) and the engine to run it.

TensorFlow-free, so ``predict.py`` decides before anything heavy loads.
"""

from __future__ import annotations

from pathlib import Path

from sentiment.artifacts import numbered_versions
from sentiment.errors import ModelError, SentimentError
from sentiment.serving import litert_engine

ENGINES = ("auto", "litert", "savedmodel")


def resolve_model(spec: str, root: str | Path = "saved_models") -> Path:
    """Turn a SavedModel dir, a model dir of versions, or a name under ``root`` into a version dir."""
    path = Path(spec)
    if not path.exists():
        path = Path(root) / spec
        if not path.exists():
            names = sorted(p.name for p in Path(root).glob("*") if p.is_dir()) if Path(root).is_dir() else []
            raise ModelError(f"no model {spec!r}: not a directory, nor a name under {root}/ (available: {', '.join(names) or 'none'})")
    if (path / "saved_model.pb").exists():
        return path
    versions = [p for p in numbered_versions(path) if p.is_dir()]
    if not versions:
        raise ModelError(f"{path} is neither a SavedModel (no saved_model.pb) nor a folder of numbered versions")
    if not (versions[-1] / "saved_model.pb").exists():
        raise ModelError(f"{versions[-1]} is not a SavedModel (no saved_model.pb)")
    return versions[-1]


def choose_engine(engine: str, path: Path) -> str:
    """Return the engine to run: ``litert`` or ``savedmodel`` (``auto``: LiteRT when the model has it and the package is installed)."""
    if engine not in ENGINES:
        raise SentimentError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "litert":
        if not litert_engine.litert_installed() and litert_engine.needs_interpreter(path):
            raise SentimentError(f"--engine litert needs the ai-edge-litert package: pip install {litert_engine.PACKAGE}")
        if not litert_engine.has_litert(path):
            raise ModelError(f"{path} has no LiteRT model; add one with: python export_model.py --add-litert {path}")
        return engine
    if engine == "auto" and litert_engine.has_litert(path) and (litert_engine.litert_installed() or not litert_engine.needs_interpreter(path)):
        return "litert"
    return "savedmodel"
