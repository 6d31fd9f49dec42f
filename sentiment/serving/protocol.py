"""TF Serving's REST API (V1) and the Open Inference Protocol (V2): reading requests, checking them, writing replies."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import orjson

from sentiment.data import fast_tokenizer
from sentiment.serving.kserve_api import InferOutput, InferRequest, InferResponse, InvalidInput
from sentiment.serving.reviews import reasons_fields
from sentiment.serving.settings import Limits

SIGNATURE = "serving_default"  # the exported SavedModel's only signature, as TF Serving names it
V1_KEYS = {"instances", "inputs", "signature_name", "explain"}
V2_INPUT = "text"  # the model's one input, as its SavedModel signature and V2 metadata name it
V2_OUTPUTS = ("probability", "label", "reasons")  # what a V2 request may ask for (reasons: with parameters.explain)
HEAD_LENGTH = "inference-header-content-length"  # the binary extension's header: bytes of JSON before the tensors


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
    if tensor.name != V2_INPUT:
        raise InvalidInput(f"unknown input {tensor.name[:100]!r}; the model's one input is {V2_INPUT!r}")
    unknown = [o.name for o in request.request_outputs or [] if o.name not in V2_OUTPUTS]
    if unknown:
        raise InvalidInput(f"unknown output {str(unknown[0])[:100]!r}; the model's outputs are {', '.join(V2_OUTPUTS)}")
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
    if request.request_outputs:  # only what was asked for, as the protocol says
        asked = {o.name for o in request.request_outputs}
        outputs = [o for o in outputs if o.name in asked]
    return InferResponse(request.id or str(uuid.uuid4()), request.model_name or name, outputs, model_version=str(version))


def check_binary_request(body: bytes, headers: dict) -> None:
    """Refuse a binary-extension V2 request whose sizes do not add up, naming the field: the JSON head's length in
    ``inference-header-content-length`` and each input's ``binary_data_size`` must cover the body exactly."""
    declared = headers.get(HEAD_LENGTH)
    if declared is None:
        return  # KServe says the header is missing
    if not str(declared).isdigit() or int(declared) > len(body):
        raise InvalidInput(f"{HEAD_LENGTH} must be the byte length of the JSON head (at most {len(body)}), not {str(declared)[:40]!r}")
    try:
        head = orjson.loads(body[: int(declared)])
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the first {declared} bytes ({HEAD_LENGTH}) are not a JSON request: {e}") from None
    inputs = head.get("inputs") if isinstance(head, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise InvalidInput('the JSON head needs "inputs": a list of tensors')
    total = 0
    for i, tensor in enumerate(inputs):
        size = (tensor.get("parameters") or {}).get("binary_data_size") if isinstance(tensor.get("parameters") or {}, dict) else None
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"inputs[{i}].parameters.binary_data_size must be a byte count, not {str(size)[:40]!r}")
        total += size
    if total != len(body) - int(declared):
        raise InvalidInput(f"the inputs' binary_data_size add up to {total} bytes, but {len(body) - int(declared)} follow the "
                           f"JSON head ({HEAD_LENGTH} {declared}): the sizes must cover the tensors exactly")
