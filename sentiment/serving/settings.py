"""What ``serve.py`` decides: where the models are, what to listen on, and the bounds on every request."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sentiment.serving import reviews


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for: the server's bounds on untrusted input and the work it causes."""

    max_body_bytes: int = 10_000_000
    max_instances: int = 1024
    max_review_chars: int = reviews.MAX_REVIEW_CHARS
    max_explain: int = 10  # reasons each way
    max_explain_reviews: int = 4  # reviews explained in one request
    explain_seconds: float = 10.0  # an explanation request's whole budget; what is left unscored is said in its "cut" note
    max_explain_waiting: int = 2  # explanations queued behind the one running; more are refused with 503


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
    head_seconds: float = 10.0  # a connection's request head must arrive whole within this (slow or half-sent ones are closed)
    body_seconds: float = 30.0  # longest wait for the next piece of a request body (then 408)
    max_connections: int = 2048  # open connections at most; past it requests get 503
    access_log: bool = False
