"""The model server: every model under a folder, on KServe's Python model server, without TensorFlow.

Each folder of the models dir is a model of that name serving its newest version through its LiteRT
twin (``litert_engine``); the default model is also ``sentiment``. A poller loads a newer version
written there (atomically, as ``export_model.py`` writes) and swaps it in without a restart.

KServe gives the protocols: V1 (TF Serving's REST API: ``POST /v1/models/NAME:predict`` with
``{"instances": [review, ...]}`` → ``{"predictions": [{"probability": p, "label": "positive"}, ...]}``),
V2 (the Open Inference Protocol: ``/v2/models/NAME/infer``), liveness, readiness and Prometheus
``/metrics``. This package adds what TF Serving clients and users of this project need on top, one
concern a module: reading and answering requests with a 4xx JSON error for a bad one (``protocol``,
bounded by ``settings.Limits``), TF Serving's status reply, versioned paths, the page at ``/`` and the
body limit (``routes``), the models dir and its hot reload (``repository``), and batching: reviews of
requests that arrive while a batch is scored are scored together (``batcher``). This module builds
and runs the server from them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import socket
import warnings
from typing import Any

from sentiment.errors import ModelError, SentimentError
from sentiment.serving import connections
from sentiment.serving.batcher import Batchers, Unavailable
from sentiment.serving.guards import BrowserGuard, is_loopback
from sentiment.serving.kserve_api import InvalidInput, ModelNotFound, ModelRepositoryExtension, RESTServer, TimingMiddleware, kserve, uvicorn
from sentiment.serving.repository import ALIAS, ModelFolders
from sentiment.serving.routes import BodyLimit, CheckedDataPlane, add_routes, bad_request, not_found, unavailable
from sentiment.serving.settings import Limits, Settings  # serve.py's settings, made here

__all__ = ["Limits", "Settings", "Server", "build", "open_socket", "quiet_logs"]

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, stopping the way a client can live with: on SIGTERM no new work is taken (503), what is in
    flight may finish, and a second before the grace period ends whatever still waits is answered 503 (JSON), so
    uvicorn never has to cancel a request (a plain 500 and a traceback each)."""

    def __init__(self, config: Any, batchers: Batchers, grace_seconds: float):
        super().__init__(config)
        self.batchers, self.grace_seconds = batchers, grace_seconds

    async def shutdown(self, sockets: list | None = None) -> None:
        """Refuse new work, answer what is left just before the grace period ends, then let uvicorn stop."""
        self.batchers.stop_taking("the server is stopping: retry on another replica or after it restarts")
        asyncio.get_running_loop().call_later(max(self.grace_seconds - 1.0, 0.2), self.batchers.abort,
                                              "the server stopped before this request was scored: retry it")
        await super().shutdown(sockets)


@dataclasses.dataclass
class Server:
    """A built server: its models, their inference threads and the uvicorn server that answers HTTP."""

    folders: ModelFolders
    batchers: Batchers
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
            self.batchers.close()
            log.info("stopped")


def build(settings: Settings) -> Server:
    """Load every model of the models dir and build the KServe app around them (raise if none can be served)."""
    if not settings.models_dir.is_dir():
        raise ModelError(f"no models dir {settings.models_dir}")
    batchers = Batchers(settings.batching, settings.max_batch, settings.limits.max_explain_waiting)
    repository = kserve.ModelRepository(str(settings.models_dir))
    folders = ModelFolders(settings, repository, batchers)
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
    if not settings.access_log:
        # KServe times every request (two getrusage calls and a formatted line) only to log it to kserve.trace, which
        # is silent without --access-log: measured, 6% of the server's samples under 8 clients.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
    app.add_exception_handler(InvalidInput, bad_request)
    app.add_exception_handler(ModelNotFound, not_found)
    app.add_exception_handler(Unavailable, unavailable)
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes, seconds=settings.body_seconds)
    app.add_middleware(BrowserGuard, loopback=is_loopback(settings.host))  # outermost: a refused request is not read
    rest.config.host, rest.config.access_log = settings.host, settings.access_log
    connections.limit(rest.config, settings.head_seconds, settings.max_connections)
    return Server(folders, batchers, GracefulServer(rest.config, batchers, settings.grace_seconds))


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
