"""Writing run artefacts safely: atomic files and the provenance every run records."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

from sentiment.errors import ModelError, WriteError

# An exported SavedModel version directory (see sentiment.export.savedmodel).
SIGNATURE = "serving_default"
METADATA_FILE = "assets.extra/metadata.json"
# The LiteRT twin of the classifier beside the SavedModel (TF Serving ignores assets.extra/): see
# sentiment.serving.litert_engine. The manifest is written last, so its presence means the files are complete.
LITERT_DIR = "assets.extra"
LITERT_MANIFEST = "litert.json"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; rename it over ``path`` if the block succeeds, else delete it.

    Readers see the old file or the new one, never half of one. The temporary name keeps
    the suffix (Keras and matplotlib choose the format from it) and is created by the
    writer with the usual permissions. The file is flushed to disk before the rename, so a
    crash cannot leave a renamed but empty file. A write that fails for want of space or
    an I/O error raises a :class:`WriteError` naming ``path`` and the space left.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        sync_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            raise write_error(path, e) from e
        raise


# Failures of the disk, not of the program: the run stops with one line and resumes once fixed.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}


def write_error(path: Path, error: OSError) -> WriteError:
    """Return the one-line error for a write of ``path`` the disk refused: what failed, and the space left there (or that it is read-only)."""
    if error.errno == errno.EROFS:
        return WriteError(f"cannot write {path}: the file system there is read-only; choose a writable place for it "
                          "(e.g. another --run-dir, --out or --models-dir) and run the command again")
    return WriteError(f"cannot write {path}: {error.strerror or error} ({free_space(path.parent)} free there); "
                      "make room and run the same command again (a training run resumes where it stopped)")


def free_space(folder: Path) -> str:
    """Return the free space of the file system holding ``folder`` (its nearest existing ancestor), e.g. '312 KB'."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TB"


def sync_file(path: Path) -> None:
    """Flush a written file's data to the disk (where a late ENOSPC or EIO shows up, if not at write time)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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
    from importlib import metadata

    try:  # read from its metadata, not imported: gensim loads only in runs that learn word vectors
        versions["gensim"] = metadata.version("gensim")
    except metadata.PackageNotFoundError:
        pass
    return versions


def process_alive(pid: int) -> bool:
    """Return True if a process with this PID runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
