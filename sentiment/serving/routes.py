"""The HTTP side added to KServe's app: the page, TF Serving's status and versioned paths, the body limit, one-line errors."""

from __future__ import annotations

import asyncio
import logging
import struct
from pathlib import Path
from typing import Any, Callable

from sentiment.errors import first_line
from sentiment.serving.kserve_api import (
    DataPlane,
    FileResponse,
    HTMLResponse,
    InferenceError,
    InferenceRequest,
    InferRequest,
    InvalidInput,
    JSONResponse,
    ModelNotFound,
    Request,
    Response,
    V1Endpoints,
    V2Endpoints,
    kserve,
)
from sentiment.serving.protocol import check_binary_request
from sentiment.serving.repository import SentimentModel

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).with_name("page")
PAGE_FILES = {"page.js": "text/javascript", "page.css": "text/css"}  # served at /page/NAME; nothing else is


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads any of it (chunked bodies are counted)."""

    def __init__(self, app: Any, limit: int, seconds: float = 30.0):
        self.app, self.limit, self.seconds = app, limit, seconds

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Read the whole body within the limit, then hand it to the app."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except asyncio.TimeoutError:
                log.info("408 %s %s: no more of the body in %g s", scope.get("method"), bounded(scope.get("path", "")), self.seconds)
                response = JSONResponse({"error": f"the request body stalled: nothing for {self.seconds:g} s"}, status_code=408,
                                        headers={"Connection": "close"})
                return await response(scope, receive, send)
            if message["type"] != "http.request":  # the client left mid-body: nothing to answer, one line to log
                log.info("%s %s: the client left before sending its whole body (%d bytes read)", scope.get("method"),
                         bounded(scope.get("path", "")), size)
                return
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
        """Decode a V2 request as KServe does, its binary sizes checked first; what KServe cannot decode is an ``InvalidInput``."""
        if isinstance(body, (bytes, bytearray)):
            check_binary_request(bytes(body), headers)
        try:
            return super().decode_inference_request(body, headers, model_name)
        except InvalidInput:
            raise
        except (InferenceError, KeyError, TypeError, AttributeError, ValueError, IndexError, ArithmeticError, struct.error) as e:
            raise InvalidInput(f"the binary request cannot be read: {first_line(e)}") from None


def add_routes(app: Any, dataplane: DataPlane, models: kserve.ModelRepository) -> None:
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


MAX_ECHO_CHARS = 300  # of a request's own text (a path, a model name) in an error reply or a log line


def bounded(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters (marked), so an error never echoes unbounded input."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


async def bad_request(request: Request, error: Exception) -> JSONResponse:
    """A 400 for invalid input, logged in one line (KServe's handler logs a traceback)."""
    message = bounded(str(error))
    log.info("400 %s %s: %s", request.method, bounded(request.url.path), message)
    return JSONResponse({"error": message}, status_code=400)


async def not_found(request: Request, error: Exception) -> JSONResponse:
    """A 404 for an unknown model or version, logged in one line."""
    message = bounded(str(error))
    log.info("404 %s %s: %s", request.method, bounded(request.url.path), message)
    return JSONResponse({"error": message}, status_code=404)


async def unavailable(request: Request, error: Exception) -> JSONResponse:
    """A 503 for work the server has no room for now (the explanation queue is full), with when to retry."""
    log.info("503 %s %s: %s", request.method, bounded(request.url.path), error)
    return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
