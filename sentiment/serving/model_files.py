"""Reading a model folder that may come from a stranger: paths kept inside it, sizes bounded, every file's checksum verified.

Every export carries ``assets.extra/checksums.json`` (``CHECKSUMS_FILE``), written last: the size and
SHA-256 of each of its files. A loader verifies the files it reads against it, so a damaged or edited
file is named instead of used. A file's SHA-256 is remembered with its device, inode, size, modification
and change times, in the process and in ``digests.json`` of the user's cache folder (``$SENTIMENT_CACHE_DIR``,
default ``~/.cache/imdb-sentiment``; empty: none): while all five are unchanged the file is not hashed again
(hashing the default model's files took ~19 ms of every one-review process). Any write to a file changes its
change time, which no one but the system can set back, so an edited file is hashed again; a file changed
within ``RACY_SECONDS`` of being hashed is not remembered, as git does for its index. ``write_checksums`` writes it (exports, ``export_model.py --add-checksums`` for older ones).
A path read from a manifest must name a regular file inside the folder: not absolute, no ``..``,
no symlink leading out, no device (``/dev/zero``), no larger than its bound.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from sentiment.artifacts import LITERT_DIR, METADATA_FILE, read_json, write_json
from sentiment.errors import ModelError, SentimentError

log = logging.getLogger(__name__)

CHECKSUMS_FILE = f"{LITERT_DIR}/checksums.json"
CHECKSUMS_FORMAT = 1
MAX_JSON_BYTES = 64 * 1024 * 1024  # metadata.json, litert.json, checksums.json (the shipped ones: under 2 MB)
MAX_FILE_BYTES = 4 * 1024**3  # any other file of a model folder (the shipped ones: under 20 MB)
CHUNK = 1024 * 1024
CACHE_ENV = "SENTIMENT_CACHE_DIR"  # the folder of digests.json ('' = remember digests in this process only)
CACHE_ENTRIES = 512  # files remembered; the oldest are forgotten first
RACY_SECONDS = 2  # a file changed this recently is not remembered: a change in the same clock tick could go unseen


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


def file_digest(path: str | Path, limit: int = MAX_FILE_BYTES, fd: int | None = None) -> dict:
    """Return the size and SHA-256 of a regular file of at most ``limit`` bytes, read in chunks (from ``fd`` if given: it is closed)."""
    import hashlib  # loads OpenSSL (~5 ms): only when something is hashed

    fd = open_regular(Path(path), limit) if fd is None else fd
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


def remembered_digest(path: Path, limit: int = MAX_FILE_BYTES) -> dict:
    """Return the size and SHA-256 of a regular file: remembered while its stat is unchanged, else hashed (and remembered)."""
    fd = open_regular(path, limit)
    info = os.fstat(fd)
    stamp = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    key, digests = str(path.resolve()), remembered_digests()
    entry = digests.get(key)
    if entry is not None and entry[:5] == stamp:
        os.close(fd)
        return {"bytes": info.st_size, "sha256": entry[5]}
    hashed_ns = time.time_ns()
    found = file_digest(path, limit, fd)  # the descriptor just stat'ed: what is hashed is what the stamp describes
    if found["bytes"] == info.st_size:
        digests.pop(key, None)
        digests[key] = stamp + [found["sha256"], hashed_ns]
        while len(digests) > CACHE_ENTRIES:
            digests.pop(next(iter(digests)))
        if not racy(digests[key]):
            save_digests(digests)
    return found


def racy(entry: list) -> bool:
    """Return True if the file was changed within RACY_SECONDS of being hashed: remembered in this process only."""
    return max(entry[3], entry[4]) + RACY_SECONDS * 10**9 >= entry[6]


def digests_path() -> Path | None:
    """Return the cache file of remembered digests, or None when ``$SENTIMENT_CACHE_DIR`` is set empty."""
    folder = os.environ.get(CACHE_ENV)
    if folder is None:
        folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "imdb-sentiment")
    return Path(folder) / "digests.json" if folder else None


@functools.cache
def remembered_digests() -> dict:
    """Return this process's remembered digests (path → [device, inode, size, mtime_ns, ctime_ns, SHA-256, hashed at ns]), read once."""
    path = digests_path()
    try:
        found = read_json_bounded(path, MAX_JSON_BYTES) if path is not None and path.is_file() else {}
    except (ModelError, OSError):  # unreadable or damaged: start afresh, it is only a cache
        found = {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, list) and len(v) == 7 and all(isinstance(x, int) for x in v[:5] + v[6:])
            and isinstance(v[5], str) and not racy(v)}


def save_digests(digests: dict) -> None:
    """Write the remembered digests to the cache file (atomically); a cache that cannot be written is only logged."""
    path = digests_path()
    if path is None:
        return
    try:
        write_json(path, {k: v for k, v in digests.items() if not racy(v)})
    except (OSError, SentimentError) as e:  # a read-only home, a full disk: the next process hashes again
        log.debug("digests not remembered in %s: %s", path, e)


def verify_file(path: Path, expected: dict) -> None:
    """Raise a ModelError naming ``path`` unless its size and SHA-256 are ``expected``."""
    found = remembered_digest(path)
    if found["bytes"] != expected["bytes"]:
        raise ModelError(f"{path} is damaged or edited: {found['bytes']} bytes where {CHECKSUMS_FILE} says {expected['bytes']}")
    if found["sha256"] != expected["sha256"]:
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
