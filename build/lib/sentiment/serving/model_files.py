"""Reading a model folder that may come from a stranger: paths kept inside it, sizes bounded, every file's checksum verified.

Every export carries ``assets.extra/checksums.json`` (``CHECKSUMS_FILE``), written last: the size and
SHA-256 of each of its files. A loader verifies the files it reads against it (each file once per
process, remembered by its size, modification time and inode), so a damaged or edited file is named
instead of used. ``write_checksums`` writes it (exports, ``export_model.py --add-checksums`` for older ones).
A path read from a manifest must name a regular file inside the folder: not absolute, no ``..``,
no symlink leading out, no device (``/dev/zero``), no larger than its bound.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from sentiment.artifacts import LITERT_DIR, METADATA_FILE, read_json, write_json
from sentiment.errors import ModelError

log = logging.getLogger(__name__)

CHECKSUMS_FILE = f"{LITERT_DIR}/checksums.json"
CHECKSUMS_FORMAT = 1
MAX_JSON_BYTES = 64 * 1024 * 1024  # metadata.json, litert.json, checksums.json (the shipped ones: under 2 MB)
MAX_FILE_BYTES = 4 * 1024**3  # any other file of a model folder (the shipped ones: under 20 MB)
CHUNK = 1024 * 1024
_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) → SHA-256, for files hashed once in this process


def inside(folder: str | Path, name: object, what: str = "a file") -> Path:
    """Return ``folder/name`` if ``name`` is a relative path that stays inside ``folder`` once resolved, else raise a ModelError."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ModelError(f"{folder}: {what} is named by {name!r}, which is not a file name")
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
        raise ModelError(f"{folder}: {what} {name!r} points outside the model folder")
    path = Path(folder) / name
    root = Path(folder).resolve()
    if not path.resolve().is_relative_to(root):
        raise ModelError(f"{folder}: {what} {name!r} leads outside the model folder (a symlink?)")
    return path


def open_regular(path: Path, limit: int) -> int:
    """Open ``path`` for reading; return its descriptor, or raise a ModelError unless it is a regular file of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from e
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)
        why = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"{info.st_size} bytes, over the {limit}-byte bound"
        raise ModelError(f"{path} is refused: {why}")
    return fd


def read_bounded(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """Return the bytes of a regular file of at most ``limit`` bytes (a ModelError for a device, a FIFO or a larger file)."""
    fd = open_regular(Path(path), limit)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelError(f"{path} is refused: over the {limit}-byte bound")
    return data


def read_json_bounded(path: str | Path, limit: int = MAX_JSON_BYTES) -> object:
    """Read a JSON file of at most ``limit`` bytes (a ModelError if it is larger, not a regular file, or not JSON)."""
    read_bounded(path, limit)  # size and kind first: read_json reads it whole
    return read_json(path)


def read_object(path: str | Path) -> dict:
    """Read a JSON file that must hold an object (a ModelError for a list, a number, ...)."""
    found = read_json_bounded(path)
    if not isinstance(found, dict):
        raise ModelError(f"{path} must hold a JSON object, not {type(found).__name__}")
    return found


def file_digest(path: str | Path, limit: int = MAX_FILE_BYTES) -> dict:
    """Return the size and SHA-256 of a regular file of at most ``limit`` bytes, read in chunks."""
    fd = open_regular(Path(path), limit)
    digest, size = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
            if size > limit:
                raise ModelError(f"{path} is refused: over the {limit}-byte bound")
    return {"bytes": size, "sha256": digest.hexdigest()}


def version_files(version_dir: Path) -> list[str]:
    """Return every file of an export (relative POSIX paths, sorted), its checksums file and hidden staging files aside."""
    found = []
    for path in sorted(Path(version_dir).rglob("*")):
        name = path.relative_to(version_dir).as_posix()
        if path.is_file() and name != CHECKSUMS_FILE and not any(part.startswith(".") for part in PurePosixPath(name).parts):
            found.append(name)
    return found


def write_checksums(version_dir: str | Path) -> Path:
    """Write ``assets.extra/checksums.json``: the size and SHA-256 of every file of the export (call it last)."""
    version_dir = Path(version_dir)
    files = {name: file_digest(version_dir / name) for name in version_files(version_dir)}
    write_json(version_dir / CHECKSUMS_FILE, {"format": CHECKSUMS_FORMAT, "files": files})
    return version_dir / CHECKSUMS_FILE


def read_checksums(version_dir: Path) -> dict[str, dict] | None:
    """Return the checksums of an export's files (None if it has no checksums file), each entry checked."""
    path = version_dir / CHECKSUMS_FILE
    if not path.exists():
        return None
    manifest = read_object(path)
    files = manifest.get("files")
    if manifest.get("format") != CHECKSUMS_FORMAT or not isinstance(files, dict):
        raise ModelError(f"{path} is not a checksums file of format {CHECKSUMS_FORMAT}")
    for name, entry in files.items():
        inside(version_dir, name, f"the file {CHECKSUMS_FILE} lists")
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)):
            raise ModelError(f"{path}: the entry of {name!r} is not a size and a SHA-256")
    return files


def verify_file(path: Path, expected: dict) -> None:
    """Raise a ModelError naming ``path`` unless its size and SHA-256 are ``expected`` (hashed once per process while unchanged)."""
    fd = open_regular(path, MAX_FILE_BYTES)
    info = os.fstat(fd)
    os.close(fd)
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if info.st_size != expected["bytes"]:
        raise ModelError(f"{path} is damaged or edited: {info.st_size} bytes where {CHECKSUMS_FILE} says {expected['bytes']}")
    if key not in _VERIFIED:
        _VERIFIED[key] = file_digest(path)["sha256"]
    if _VERIFIED[key] != expected["sha256"]:
        raise ModelError(f"{path} is damaged or edited: its SHA-256 differs from {CHECKSUMS_FILE}")


def verify_files(version_dir: str | Path, names: Iterable[str] | None = None, trust_model: bool = False) -> None:
    """Verify the listed files of an export (``names``, default all) against its checksums; a ModelError names the first that differs.

    An export without a checksums file (made before them) is refused, or with ``trust_model`` loaded with a warning.
    """
    version_dir = Path(version_dir)
    files = read_checksums(version_dir)
    if files is None:
        message = (f"{version_dir} has no {CHECKSUMS_FILE} (exported before checksums, or not by this project), so a damaged or "
                   f"edited file would go unnoticed; if you trust it, add one with: python export_model.py --add-checksums {version_dir}")
        if not trust_model:
            raise ModelError(message)
        log.warning("%s; loading it anyway (--trust-model)", message)
        return
    for name in files if names is None else names:
        if name not in files:
            raise ModelError(f"{version_dir / name} is not listed in {CHECKSUMS_FILE} (added after the export?)")
        verify_file(inside(version_dir, name), files[name])


def savedmodel_files(version_dir: str | Path) -> list[str]:
    """Return the files the SavedModel engine reads, as the checksums file names them: saved_model.pb, variables/, assets/, metadata."""
    files = read_checksums(Path(version_dir)) or {}
    return [name for name in files if not name.startswith(f"{LITERT_DIR}/") or name == METADATA_FILE]


def check_npz(path: str | Path, limit: int = MAX_FILE_BYTES) -> None:
    """Raise a ModelError unless ``path`` is a regular .npz whose arrays declare at most ``limit`` bytes in all (no decompression bomb)."""
    fd = open_regular(Path(path), limit)
    try:
        with os.fdopen(fd, "rb") as f, zipfile.ZipFile(f) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelError(f"{path} is not a readable .npz: {e}") from e
    if declared > limit:
        raise ModelError(f"{path} is refused: its arrays declare {declared} bytes, over the {limit}-byte bound")
