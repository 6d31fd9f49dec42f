"""Writing run artefacts safely: atomic files and the provenance every run records."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

# A run directory (see sentiment.experiment) ...
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
VOCAB_FILE = "vocabulary.txt"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
# ... and an exported SavedModel version directory (see sentiment.export).
SIGNATURE = "serving_default"
METADATA_FILE = "assets.extra/metadata.json"


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """Return the process umask (reading it requires setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def is_finished_run(run_dir: Path) -> bool:
    """Return True if ``run_dir`` holds a completed training run (metrics are written last)."""
    return all((Path(run_dir) / f).exists() for f in (CONFIG_FILE, MODEL_FILE, METRICS_FILE))


def numbered_versions(model_root: Path) -> list[Path]:
    """Return the integer-named entries of a TF Serving model folder, lowest version first."""
    if not Path(model_root).is_dir():
        return []
    return sorted((p for p in Path(model_root).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def library_versions() -> dict[str, str]:
    """Return the versions of Python and the libraries a result depends on."""
    import keras
    import numpy
    import sklearn
    import tensorflow as tf

    versions = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import tensorflow_datasets as tfds

        versions["tensorflow-datasets"] = tfds.__version__
    except ImportError:  # only needed for the TFDS source
        pass
    return versions
