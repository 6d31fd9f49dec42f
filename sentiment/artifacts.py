"""Writing run artefacts safely: atomic files and the provenance every run records."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import uuid
from pathlib import Path
from typing import Any, Iterator

from sentiment.errors import ModelError

# An exported SavedModel version directory (see sentiment.export).
SIGNATURE = "serving_default"
METADATA_FILE = "assets.extra/metadata.json"
# The LiteRT twin of the classifier beside the SavedModel (TF Serving ignores assets.extra/): see
# sentiment.litert_engine. The manifest is written last, so its presence means the files are complete.
LITERT_DIR = "assets.extra"
LITERT_MANIFEST = "litert.json"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` if the block succeeds, else delete it.

    Readers see the old file or the new one, never half of one. The temporary name keeps
    the suffix (Keras and matplotlib choose the format from it) and is created by the
    writer with the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json`; a ModelError if it is truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is unreadable ({e})") from e


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
