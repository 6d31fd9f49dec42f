"""The model server: every model under a folder, on KServe's Python model server, without TensorFlow.

Each folder of the models dir is a model of that name serving its newest version through its LiteRT
twin (``litert_engine``); the default model is also ``sentiment``. A poller loads a newer version
written there (atomically, as ``export_model.py`` writes) and swaps it in without a restart.

KServe gives the protocols: V1 (TF Serving's REST API: ``POST /v1/models/NAME:predict`` with
``{"instances": [review, ...]}`` → ``{"predictions": [{"probability": p, "label": "positive"}, ...]}``),
V2 (the Open Inference Protocol: ``/v2/models/NAME/infer``), liveness, readiness and Prometheus
``/metrics``. This module adds what TF Serving clients and users of this project need on top: TF
Serving's status reply and versioned paths, ``"explain": K``, a page at ``/`` for browsers, bounds on
every request (body size, instances, review length, explanation work) with a 4xx JSON error for a
bad one, and batching: reviews of requests that arrive while a batch is scored are scored together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
import socket
import struct
import sys
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import orjson


@contextlib.contextmanager
def program_name_only() -> Iterator[None]:
    """Hide the command line while KServe loads: ``kserve.model_server`` parses ``sys.argv`` when imported."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


with program_name_only():
    import kserve
    import kserve.model_server
    import uvicorn
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from kserve.errors import InferenceError, InvalidInput, ModelNotFound
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer
    from kserve.protocol.rest.v1_endpoints import V1Endpoints
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from kserve.protocol.rest.v2_endpoints import V2Endpoints

from sentiment.artifacts import numbered_versions
from sentiment.errors import ModelError, SentimentError, first_line
from sentiment import explanation
from sentiment.serving import fast_tokenizer, litert_engine, reviews

log = logging.getLogger(__name__)

ALIAS = "sentiment"  # the default model's second name
PAGE_DIR = Path(__file__).with_name("page")
PAGE_FILES = {"page.js": "text/javascript", "page.css": "text/css"}  # served at /page/NAME; nothing else is
SIGNATURE = "serving_default"  # the exported SavedModel's only signature, as TF Serving names it
V1_KEYS = {"instances", "inputs", "signature_name", "explain"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for: the server's bounds on untrusted input and the work it causes."""

    max_body_bytes: int = 10_000_000
    max_instances: int = 1024
    max_review_chars: int = reviews.MAX_REVIEW_CHARS
    max_explain: int = 10  # reasons each way
    max_explain_reviews: int = 4  # reviews explained in one request (each costs up to ~1 s: explanation.MAX_WORDS)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything ``serve.py`` decides: where models are, what to listen on, the limits, batching."""

    models_dir: Path
    default_model: str
    host: str = "127.0.0.1"
    port: int = 8080
    limits: Limits = Limits()
    batching: bool = True
    max_batch: int = 1024  # reviews scored in one call when batching
    poll_seconds: float = 2.0  # how often the models dir is read for new versions (0: never)
    grace_seconds: int = 5  # how long requests in flight may finish after SIGTERM or Ctrl-C
    access_log: bool = False


@dataclasses.dataclass(frozen=True)
class Version:
    """One loaded version of a model: its number, directory and LiteRT predictor."""

    number: int
    path: Path
    predictor: litert_engine.LiteRTPredictor


class Batcher:
    """Scores reviews on one inference thread; reviews of requests arriving while a batch runs go together into the next.

    The thread is the only one that touches a LiteRT interpreter (they are not thread-safe); with
    ``batching`` off each request is scored on its own, in arrival order.
    """

    def __init__(self, executor: concurrent.futures.Executor, batching: bool, max_batch: int):
        self.executor, self.batching, self.max_batch = executor, batching, max_batch
        self._pending: list[tuple[Callable[[list[str]], np.ndarray], list[str], asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def score(self, score: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """Return ``score(texts)``, computed on the inference thread together with other requests' reviews."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((score, texts, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def run(self, work: Callable[[], Any]) -> Any:
        """Run other work (an explanation) on the inference thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    def _take(self) -> list[tuple[Callable, list[str], asyncio.Future]]:
        """Take the next batch: the first pending request and, when batching, those after it for the same model, up to ``max_batch`` reviews."""
        first, *rest = self._pending
        batch, size = [first], len(first[1])
        for item in rest:
            if not self.batching or item[0] != first[0] or size + len(item[1]) > self.max_batch:  # bound methods: ==, not is
                break
            batch.append(item)
            size += len(item[1])
        del self._pending[: len(batch)]
        return batch

    async def _drain(self) -> None:
        """Score pending requests batch by batch until none is left."""
        while self._pending:
            batch = self._take()
            texts = [text for _, texts, _ in batch for text in texts]
            try:
                scores = await self.run(lambda: batch[0][0](texts))
            except Exception as e:  # noqa: BLE001 - handed to every waiting request, which answers 500
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for _, texts, future in batch:
                if not future.done():
                    future.set_result(scores[start : start + len(texts)])
                start += len(texts)


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
        """Each review's ``k`` strongest reasons each way: ``predict.py --explain``'s occlusion reasons, bounded as it bounds them."""
        predictor = version.predictor
        return await self.batcher.run(lambda: [explanation.explain(predictor.probabilities, fast_tokenizer.tokenize(text), k, predictor.keeps_tail)
                                               for text in texts])


def json_body(payload: dict | bytes) -> Any:
    """A V1 body as JSON: KServe passes it undecoded when its Content-Type is not JSON (``curl -d`` sends a form type)."""
    if not isinstance(payload, (bytes, bytearray)):
        return payload
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not JSON: {e}") from None


def v1_reviews(body: Any, limits: Limits) -> tuple[list[str], int, bool]:
    """Read a TF Serving request: reviews (``instances`` rows or ``inputs`` columns), the explain count, and whether it was columnar."""
    if not isinstance(body, dict):
        raise InvalidInput('the body must be a JSON object: {"instances": ["a review", ...]}')
    unknown = sorted(set(body) - V1_KEYS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; a request has {', '.join(sorted(V1_KEYS))}")
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInput('give exactly one of "instances" (rows) and "inputs" (columns)')
    if body.get("signature_name", SIGNATURE) != SIGNATURE:
        raise InvalidInput(f"unknown signature_name {body['signature_name']!r}; the model has {SIGNATURE!r}")
    columnar = "inputs" in body
    items = body["inputs"] if columnar else body["instances"]
    if columnar and isinstance(items, dict):
        if set(items) != {"text"}:
            raise InvalidInput('"inputs" as an object takes one input, "text"')
        items = items["text"]
    if not isinstance(items, list):
        raise InvalidInput(f'"{"inputs" if columnar else "instances"}" must be a list of reviews')
    field = "inputs" if columnar else "instances"
    texts = [instance_text(item, f"{field}[{i}]", columnar) for i, item in enumerate(items)]
    return check_reviews(texts, field, limits), explain_count(body.get("explain", 0), len(texts), limits), columnar


def instance_text(item: Any, where: str, columnar: bool) -> str:
    """One review of a V1 request: a string, or (rows) an object ``{"text": "..."}`` as TF Serving takes named inputs."""
    if isinstance(item, dict) and not columnar and set(item) == {"text"}:
        item = item["text"]
    if not isinstance(item, str):
        shapes = "a string" if columnar else 'a string or {"text": string}'
        raise InvalidInput(f"{where} must be a review ({shapes}), not {json_type(item)}")
    return item


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def check_reviews(texts: list[str], field: str, limits: Limits) -> list[str]:
    """Refuse a request whose reviews the model cannot classify, naming the first bad one; return them unchanged."""
    if not texts:
        raise InvalidInput(f'"{field}" is empty: send at least one review')
    if len(texts) > limits.max_instances:
        raise InvalidInput(f"{len(texts)} reviews in one request; the limit is {limits.max_instances}")
    for i, text in enumerate(texts):
        problem = review_problem(text, limits)
        if problem:
            raise InvalidInput(f"{field}[{i}]: {problem}")
    return texts


def review_problem(text: str, limits: Limits) -> str | None:
    """Why one review cannot be classified (None if it can): empty, too long, NUL characters, no words."""
    if not text.strip():
        return "empty review"
    if len(text) > limits.max_review_chars:
        return f"{len(text)} characters; a review may have at most {limits.max_review_chars}"
    if "\x00" in text:
        return "contains NUL characters"
    if not fast_tokenizer.has_words(text):
        return "no words in review (only markup or punctuation)"
    return None


def explain_count(value: Any, reviews_count: int, limits: Limits) -> int:
    """Check a request's ``explain`` (reasons each way, 0 for none) against the limits."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f'"explain" must be a whole number of reasons each way (0 to {limits.max_explain}), not {value!r}')
    if value > limits.max_explain:
        raise InvalidInput(f'"explain" is at most {limits.max_explain} reasons each way, not {value}')
    if value and reviews_count > limits.max_explain_reviews:
        raise InvalidInput(f"explain takes at most {limits.max_explain_reviews} reviews per request, not {reviews_count}")
    return value


def v2_reviews(request: InferRequest, limits: Limits) -> tuple[list[str], int]:
    """Read an Open Inference Protocol request: one BYTES input of reviews, shape [n]; ``parameters.explain`` optional."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected one input (text, BYTES, shape [n]), got {len(request.inputs)}")
    tensor = request.inputs[0]
    data = tensor.data
    if tensor.datatype != "BYTES" or not isinstance(data, list):
        raise InvalidInput(f"input {tensor.name!r} must be BYTES (the reviews), not {tensor.datatype}")
    if list(tensor.shape) != [len(data)]:
        raise InvalidInput(f"input {tensor.name!r} has shape {list(tensor.shape)} but {len(data)} reviews; send shape [{len(data)}]")
    texts = [decoded_text(item, f"inputs[0].data[{i}]") for i, item in enumerate(data)]
    parameters = request.parameters or {}
    explain = parameters.get("explain", 0) if isinstance(parameters, dict) else 0
    return check_reviews(texts, "inputs[0].data", limits), explain_count(explain, len(texts), limits)


def decoded_text(item: Any, where: str) -> str:
    """One V2 review: a JSON string, or UTF-8 bytes (binary tensor data)."""
    if isinstance(item, (bytes, bytearray)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"{where} is not valid UTF-8 (byte {e.start})") from None
    if not isinstance(item, str):
        raise InvalidInput(f"{where} must be a review (a string), not {json_type(item)}")
    return item


def reasons_fields(reasons: dict) -> dict:
    """A review's reasons as JSON: ``predict.py --format json``'s ``reasons`` field (``cut``: what a long review's explanation left out)."""
    fields = {side: [{"phrase": r.phrase, "weight": round(r.weight, 4)} for r in reasons[side]] for side in ("positive", "negative")}
    return {**fields, "cut": reasons.get("cut")}


def v1_response(probabilities: np.ndarray, labels: list[str], reasons: list[dict] | None, columnar: bool) -> dict:
    """TF Serving's reply: ``predictions`` rows (``outputs`` columns for a columnar request), as the SavedModel's signature names them."""
    explained = [reasons_fields(r) for r in reasons] if reasons is not None else None
    if columnar:
        outputs = {"probability": [float(p) for p in probabilities], "label": labels}
        return {"outputs": {**outputs, "reasons": explained} if explained is not None else outputs}
    rows = [{"probability": float(p), "label": label} for p, label in zip(probabilities, labels)]
    if explained is not None:
        rows = [{**row, "reasons": why} for row, why in zip(rows, explained)]
    return {"predictions": rows}


def v2_response(request: InferRequest, name: str, version: int, probabilities: np.ndarray, labels: list[str], reasons: list[dict] | None) -> InferResponse:
    """The Open Inference Protocol reply: ``probability`` FP32 [n] and ``label`` BYTES [n] (and ``reasons``, JSON per review)."""
    n = len(labels)
    outputs = [InferOutput("probability", [n], "FP32", [float(p) for p in probabilities]), InferOutput("label", [n], "BYTES", labels)]
    if reasons is not None:
        outputs.append(InferOutput("reasons", [n], "BYTES", [orjson.dumps(reasons_fields(r)).decode() for r in reasons]))
    return InferResponse(request.id or str(uuid.uuid4()), request.model_name or name, outputs, model_version=str(version))


def newest_version(folder: Path) -> Path | None:
    """The newest numbered version of a model folder (None if it has none)."""
    versions = [p for p in numbered_versions(folder) if p.is_dir()]
    return versions[-1] if versions else None


def load_version(path: Path) -> Version:
    """Load one exported version with its LiteRT twin, in this process (no worker processes: the server has its threads)."""
    if not litert_engine.has_litert(path):
        raise ModelError(f"{path} has no LiteRT model; add one with: python export_model.py --add-litert {path}")
    return Version(int(path.name), path, litert_engine.LiteRTPredictor(path, workers=1))


class ModelFolders:
    """The models dir as KServe's model repository: loads every folder's newest version, now and whenever a newer one appears."""

    def __init__(self, settings: Settings, repository: kserve.ModelRepository, batcher: Batcher):
        self.settings, self.repository, self.batcher = settings, repository, batcher
        self._refused: set[Path] = set()  # versions that failed to load, reported once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> list[str]:
        """Load what is new in the models dir; return the names of the models that changed."""
        root = self.settings.models_dir
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
        return [folder.name for folder in folders if self.refresh(folder)]

    def refresh(self, folder: Path) -> bool:
        """Serve the folder's newest version if it is newer than the one served; return True if it changed."""
        path = newest_version(folder)
        model = self.repository.get_model(folder.name)
        if path is None or path in self._refused or (model is not None and int(path.name) <= model.version.number):
            return False
        try:
            version = load_version(path)
        except (SentimentError, OSError, ValueError) as e:
            self._refused.add(path)
            log.warning("not serving %s: %s", path, e)
            return False
        if model is None:
            model = SentimentModel(folder.name, version, self.batcher, self.settings.limits)
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


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads any of it (chunked bodies are counted)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Read the whole body within the limit, then hand it to the app."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, replay([], message), send)  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await self.refuse(scope, receive, send)
        await self.app(scope, replay([b"".join(chunks)], None, receive), send)

    async def refuse(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Answer 413 with a JSON error."""
        log.warning("413 %s %s: body over %d bytes", scope.get("method"), scope.get("path"), self.limit)
        response = JSONResponse({"error": f"request body over {self.limit} bytes (the server's --max-body-bytes)"}, status_code=413)
        await response(scope, receive, send)


def replay(bodies: list[bytes], last: dict | None, receive: Callable | None = None) -> Callable:
    """A ``receive`` that gives the body already read (or the disconnect seen), then defers to the real one."""
    messages = [{"type": "http.request", "body": body, "more_body": False} for body in bodies] + ([last] if last else [])

    async def receive_again() -> dict:
        if messages:
            return messages.pop(0)
        return await receive() if receive else {"type": "http.disconnect"}

    return receive_again


class CheckedDataPlane(DataPlane):
    """KServe's data plane, refusing a malformed binary V2 request (the Open Inference Protocol's binary extension) with a 400.

    KServe decodes the JSON head and the tensors appended after it in its own code, which answers a bad
    ``inference-header-content-length``, a length prefix past the end or bytes that are not UTF-8 with a
    500 and a traceback; here each is the client's error.
    """

    def decode_inference_request(self, body: bytes | InferenceRequest, headers: dict, model_name: str) -> InferRequest:
        """Decode a V2 request as KServe does; what KServe cannot decode is an ``InvalidInput``."""
        try:
            return super().decode_inference_request(body, headers, model_name)
        except InvalidInput:
            raise
        except (InferenceError, KeyError, TypeError, AttributeError, ValueError, IndexError, ArithmeticError, struct.error) as e:
            raise InvalidInput(f"the binary request cannot be read: {first_line(e)}") from None


def add_routes(app: FastAPI, dataplane: DataPlane, models: kserve.ModelRepository) -> None:
    """Add this project's routes, ahead of KServe's: the page, TF Serving's status reply, versioned V1/V2 paths."""
    v1, v2 = V1Endpoints(dataplane), V2Endpoints(dataplane)

    def served(name: str, version: str | None = None) -> SentimentModel:
        """The model serving ``name`` (and ``version``, if given), or a 404."""
        model = models.get_model(name)
        if model is None:
            raise ModelNotFound(name)
        if version is not None and version != str(model.version.number):
            raise VersionNotFound(name, version, model.version.number)
        return model

    async def root(request: Request) -> Response:
        """The page for a browser; KServe's liveness reply (``{"status": "alive"}``) for anything else."""
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse((PAGE_DIR / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})
        return JSONResponse(await dataplane.live())

    async def page_file(name: str) -> Response:
        """The page's script and style sheet (and nothing else)."""
        if name not in PAGE_FILES:
            return JSONResponse({"error": f"no page file {name!r}"}, status_code=404)
        return FileResponse(PAGE_DIR / name, media_type=PAGE_FILES[name], headers={"Cache-Control": "no-cache"})

    async def status(model_name: str) -> dict:
        """TF Serving's model status, plus KServe V1's ``name`` and ``ready``."""
        return status_reply(model_name, served(model_name))

    async def version_status(model_name: str, model_version: str) -> dict:
        """TF Serving's status of one version (404 unless it is the one served)."""
        return status_reply(model_name, served(model_name, model_version))

    async def version_predict(model_name: str, model_version: str, request: Request) -> Any:
        """V1 predict on a named version (the one served)."""
        served(model_name, model_version)
        return await v1.predict(model_name, request)

    async def version_infer(raw_request: Request, raw_response: Response, model_name: str, model_version: str,
                            request_body: InferenceRequest) -> Any:
        """V2 infer on a named version (the one served)."""
        served(model_name, model_version)
        return await v2.infer(raw_request, raw_response, model_name, request_body)

    async def read_only(model_name: str) -> Response:
        """KServe's model repository extension, refused: only --models-dir decides what is served (no client may unload a model)."""
        log.info("403 load or unload of %s refused", model_name)
        return JSONResponse({"error": "the model repository is read-only: the server serves what --models-dir holds"}, status_code=403)

    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
    app.add_api_route("/page/{name}", page_file, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/models/{model_name}", status, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/versions/{model_version}", version_status, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}/versions/{model_version}:predict", version_predict, methods=["POST"], response_model=None)
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/infer", version_infer, methods=["POST"], response_model=None)
    for action in ("load", "unload"):  # ahead of KServe's routes of the same paths
        app.add_api_route(f"/v2/repository/models/{{model_name}}/{action}", read_only, methods=["POST"], include_in_schema=False)


class VersionNotFound(ModelNotFound):
    """A version that is not the one served: 404, as TF Serving answers."""

    def __init__(self, name: str, version: str, served: int):
        super().__init__(name)
        self.reason = f"version {version} of model {name} is not served (it serves version {served})"


def status_reply(name: str, model: SentimentModel) -> dict:
    """``GET /v1/models/NAME``: TF Serving's ``model_version_status`` and KServe V1's ``name`` and ``ready``."""
    state = {"version": str(model.version.number), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    return {"name": name, "ready": model.ready, "model_version_status": [state]}


async def bad_request(request: Request, error: Exception) -> JSONResponse:
    """A 400 for invalid input, logged in one line (KServe's handler logs a traceback)."""
    log.info("400 %s %s: %s", request.method, request.url.path, error)
    return JSONResponse({"error": str(error)}, status_code=400)


async def not_found(request: Request, error: Exception) -> JSONResponse:
    """A 404 for an unknown model or version, logged in one line."""
    log.info("404 %s %s: %s", request.method, request.url.path, error)
    return JSONResponse({"error": str(error)}, status_code=404)


@dataclasses.dataclass
class Server:
    """A built server: its models, its inference thread and the uvicorn server that answers HTTP."""

    folders: ModelFolders
    executor: concurrent.futures.ThreadPoolExecutor
    http: uvicorn.Server

    def run(self, sock: socket.socket) -> None:
        """Serve on ``sock`` until SIGTERM or Ctrl-C (uvicorn stops gracefully), then release everything."""
        self.folders.start_polling()
        for sig in (signal.SIGINT, signal.SIGTERM):  # uvicorn re-raises the signal it stopped on: here, a no-op
            signal.signal(sig, lambda number, frame: None)
        try:
            self.http.run(sockets=[sock])
        finally:
            self.folders.stop()
            self.executor.shutdown(wait=False, cancel_futures=True)
            log.info("stopped")


def build(settings: Settings) -> Server:
    """Load every model of the models dir and build the KServe app around them (raise if none can be served)."""
    if not settings.models_dir.is_dir():
        raise ModelError(f"no models dir {settings.models_dir}")
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
    batcher = Batcher(executor, settings.batching, settings.max_batch)
    repository = kserve.ModelRepository(str(settings.models_dir))
    folders = ModelFolders(settings, repository, batcher)
    if not folders.scan():
        raise ModelError(f"no servable model in {settings.models_dir} (each needs <name>/<version>/ with a LiteRT twin)")
    if repository.get_model(settings.default_model) is None:
        log.warning("default model %s is not served, so neither is %s", settings.default_model, ALIAS)
    dataplane = CheckedDataPlane(model_registry=repository)
    rest = RESTServer(kserve.model_server.FASTAPI_APP_IMPORT_STRING, dataplane, ModelRepositoryExtension(model_registry=repository),
                      settings.port, grace_period=settings.grace_seconds)
    app = kserve.model_server.app
    add_routes(app, dataplane, repository)
    rest.create_application()  # KServe's middleware, V1/V2 routes, health, /metrics and error handlers
    app.add_exception_handler(InvalidInput, bad_request)
    app.add_exception_handler(ModelNotFound, not_found)
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    rest.config.host, rest.config.access_log = settings.host, settings.access_log
    return Server(folders, executor, uvicorn.Server(rest.config))


def open_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket now (port 0: any free port), so a busy port is a one-line error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SentimentError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def quiet_logs(access_log: bool) -> None:
    """Route KServe's and uvicorn's loggers through ours; per-request lines (latency, access) only when asked."""
    # KServe 0.21 answers V1 with FastAPI's ORJSONResponse, which FastAPI now warns about on every request.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    for name in ("kserve", "uvicorn", "uvicorn.error", "uvicorn.access", "kserve.trace"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("kserve.trace").setLevel(logging.INFO if access_log else logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
