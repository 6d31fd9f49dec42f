"""KServe's names, imported once with the command line hidden: ``kserve.model_server`` parses ``sys.argv`` when imported."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


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
    from timing_asgi import TimingMiddleware  # KServe's per-request timing (its only output: a kserve.trace line)

__all__ = ["kserve", "uvicorn", "FastAPI", "Request", "Response", "FileResponse", "HTMLResponse", "JSONResponse", "InferenceError",
           "InvalidInput", "ModelNotFound", "DataPlane", "InferOutput", "InferRequest", "InferResponse", "ModelRepositoryExtension",
           "RESTServer", "V1Endpoints", "InferenceRequest", "V2Endpoints", "TimingMiddleware"]
