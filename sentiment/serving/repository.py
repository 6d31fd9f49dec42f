"""The models dir as KServe's model repository: each folder a model serving its newest version, swapped in when a newer one appears."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

from sentiment.artifacts import numbered_versions
from sentiment.data import fast_tokenizer
from sentiment.errors import ModelError, SentimentError
from sentiment.evaluation import explanation
from sentiment.serving import litert_engine, reviews
from sentiment.serving.batcher import Batcher, Batchers
from sentiment.serving.kserve_api import InferRequest, InferResponse, kserve
from sentiment.serving.protocol import json_body, v1_response, v1_reviews, v2_response, v2_reviews
from sentiment.serving.settings import Limits, Settings

log = logging.getLogger(__name__)

ALIAS = "sentiment"  # the default model's second name
# Shortened copies an explanation scores per inference job: as many as the engine runs one review at a time
# (litert_engine.SINGLE_MAX), so a prediction of the same model waits for at most that many single-review calls.
EXPLAIN_CHUNK = 32


@dataclasses.dataclass(frozen=True)
class Version:
    """One loaded version of a model: its number, directory and LiteRT predictor."""

    number: int
    path: Path
    predictor: litert_engine.LiteRTPredictor


class SentimentModel(kserve.Model):
    """One model folder as a KServe model: its newest version, swapped in place when a newer one is loaded."""

    def __init__(self, name: str, version: Version, batcher: Batcher, limits: Limits):
        super().__init__(name)
        self.version, self.batcher, self.limits = version, batcher, limits
        self.ready = True

    def load(self) -> bool:
        """Already loaded when made."""
        return self.ready

    def get_input_types(self) -> list[dict]:
        """V2 metadata: one BYTES tensor of reviews."""
        return [{"name": "text", "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        """V2 metadata: P(positive) and the label, per review."""
        return [{"name": "probability", "datatype": "FP32", "shape": [-1]}, {"name": "label", "datatype": "BYTES", "shape": [-1]}]

    async def predict(self, payload: dict | InferRequest | bytes, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """Classify a V1 (TF Serving) or V2 (Open Inference Protocol) request."""
        if isinstance(payload, InferRequest):
            texts, explain = v2_reviews(payload, self.limits)
        else:
            texts, explain, columnar = v1_reviews(json_body(payload), self.limits)
        version = self.version
        probabilities = await self.batcher.score(version.predictor.probabilities, texts)
        reasons = await self.explain_reviews(version, texts, explain) if explain else None
        labels = [reviews.label_for(float(p), version.predictor.threshold) for p in probabilities]
        if isinstance(payload, InferRequest):
            return v2_response(payload, self.name, version.number, probabilities, labels, reasons)
        return v1_response(probabilities, labels, reasons, columnar)

    async def explain_reviews(self, version: Version, texts: list[str], k: int) -> list[dict]:
        """Each review's ``k`` strongest reasons each way (``predict.py --explain``'s occlusion), within the request's budget.

        Its shortened copies are scored ``EXPLAIN_CHUNK`` at a time as background jobs of the inference
        thread: predictions waiting meanwhile go first (sentiment.serving.batcher).
        """
        predictor, tokens = version.predictor, [fast_tokenizer.tokenize(text) for text in texts]
        seconds = self.limits.explain_seconds / len(texts)

        def work(score):
            return explanation.explain_many(score, tokens, k, predictor.keeps_tail, seconds=seconds, chunk_size=EXPLAIN_CHUNK)

        return await self.batcher.explain(work, predictor.probabilities)


def newest_version(folder: Path) -> Path | None:
    """The newest numbered version of a model folder (None if it has none)."""
    versions = [p for p in numbered_versions(folder) if p.is_dir()]
    return versions[-1] if versions else None


def load_version(path: Path) -> Version:
    """Load one exported version with its LiteRT twin, in this process (no worker processes: the server has its threads)."""
    if not (path / "assets.extra" / "checksums.json").is_file():  # an export writes it last: a copy or export under way
        raise ModelError(f"{path} is incomplete (no assets.extra/checksums.json, written last by an export): "
                         "it is loaded once its files are all there")
    if not litert_engine.has_litert(path):
        raise ModelError(f"{path} has no LiteRT model; add one with: python export_model.py --add-litert {path}")
    return Version(int(path.name), path, litert_engine.LiteRTPredictor(path, workers=1))


def folder_state(path: Path, limit: int = 200) -> tuple:
    """What a version folder holds, cheaply (names, sizes, modification times of at most ``limit`` entries): changes when a copy completes."""
    entries = []
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                stat = os.stat(os.path.join(root, name), follow_symlinks=False)
            except OSError:
                continue
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
            if len(entries) >= limit:
                return tuple(sorted(entries))
    return tuple(sorted(entries))


class ModelFolders:
    """The models dir as KServe's model repository: loads every folder's newest version, now and whenever a newer one appears."""

    def __init__(self, settings: Settings, repository: kserve.ModelRepository, batchers: Batchers):
        self.settings, self.repository, self.batchers = settings, repository, batchers
        self._refused: dict[Path, tuple] = {}  # versions that failed to load, with what their folder held then
        self._gone: set[str] = set()  # models whose folder went away, reported once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> list[str]:
        """Load what is new in the models dir; return the names of the models that changed."""
        root = self.settings.models_dir
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
        changed = [folder.name for folder in folders if self.refresh(folder)]
        return changed + self.unload_gone({folder.name for folder in folders})

    def unload_gone(self, present: set[str]) -> list[str]:
        """Stop serving a model whose folder (or newest version) was deleted, as TF Serving does, saying so once."""
        gone = []
        for name, model in list(self.repository.get_models().items()):
            if name == ALIAS or not isinstance(model, SentimentModel) or (name in present and model.version.path.is_dir()):
                continue
            log.warning("%s version %d was removed from %s: no longer served", name, model.version.number, self.settings.models_dir)
            self.repository.unload(name)
            if name == self.settings.default_model and self.repository.get_model(ALIAS) is model:
                self.repository.unload(ALIAS)
            gone.append(name)
        return gone

    def refresh(self, folder: Path) -> bool:
        """Serve the folder's newest version if it is newer than the one served; return True if it changed."""
        path = newest_version(folder)
        model = self.repository.get_model(folder.name)
        if path is None or (model is not None and int(path.name) <= model.version.number and model.version.path.is_dir()):
            return False
        state = folder_state(path)
        if self._refused.get(path) == state:  # refused, and nothing changed since
            return False
        retry = path in self._refused
        try:
            version = load_version(path)
        except (SentimentError, OSError, ValueError) as e:
            self._refused[path] = state
            log.warning("not serving %s%s: %s", path, " (changed, tried again)" if retry else "", e)
            return False
        self._refused.pop(path, None)
        if model is None:
            model = SentimentModel(folder.name, version, self.batchers.for_model(folder.name), self.settings.limits)
            self.repository.update(model)
            if folder.name == self.settings.default_model:
                self.repository.update(model, ALIAS)
            log.info("serving %s version %d%s", folder.name, version.number, f" (also as {ALIAS})" if folder.name == self.settings.default_model else "")
        else:
            previous, model.version = model.version.number, version  # requests already scoring keep the version they started with
            log.info("serving %s version %d (was version %d)", folder.name, version.number, previous)
        return True

    def start_polling(self) -> None:
        """Read the models dir every ``poll_seconds`` in a background thread."""
        if self.settings.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        """The poller's loop: scan, wait, until stopped."""
        while not self._stop.wait(self.settings.poll_seconds):
            try:
                self.scan()
            except OSError as e:  # the dir went away or became unreadable: keep serving what is loaded
                log.warning("cannot read %s: %s", self.settings.models_dir, e)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
