"""Several serving processes on one listening socket (``serve.py --workers N``): one Python process is one core.

A process answers HTTP and runs the tokenizer under one interpreter lock, so on a machine of several cores
one process leaves cores idle. Here the parent binds the socket, forks ``workers`` children that each load the
models and serve on it (the kernel hands each connection to one of them), reports when all are ready (or the
first one's error), and forwards SIGTERM and Ctrl-C to them, so each stops gracefully as one server does.
Measured on 2 cores (`wide_lstm/5`, 8 clients): 2 processes answered 496 and 634 reviews/s against 354 and
298 for one. Each process holds its own copy of the models and polls the model folder itself.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Callable

from sentiment.errors import first_line

log = logging.getLogger(__name__)

READY = b"ready\n"


def serve_in_children(sock: socket.socket, workers: int, serve: Callable[[socket.socket, Callable[[], None]], None]) -> tuple[list[int], str]:
    """Fork ``workers`` children running ``serve(sock, ready)``; return their pids once all said ready, and the first error ("" if none)."""
    children, pipes = [], []
    for _ in range(workers):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve until stopped, never return into the parent's code
            os.close(read_end)
            code = 0
            try:
                serve(sock, lambda: os.write(write_end, READY))
            except BaseException as e:  # noqa: BLE001  (the parent reports it as one line)
                os.write(write_end, first_line(e).encode("utf-8", "replace")[:2000] + b"\n")
                code = 2
            finally:
                os._exit(code)
        os.close(write_end)
        children.append(pid)
        pipes.append(read_end)
    errors = [read_line(fd) for fd in pipes]
    for fd in pipes:
        os.close(fd)
    failed = next((line for line in errors if line.encode() + b"\n" != READY), "")
    return children, failed


def read_line(fd: int) -> str:
    """Read one line a child wrote on its pipe ("" if it died first)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").rstrip("\n") or "a serving process stopped while loading"


def wait_for_children(children: list[int]) -> int:
    """Forward SIGTERM and SIGINT to the children until all have exited; return the worst exit code."""

    signal.signal(signal.SIGTERM, lambda number, frame: terminate(children))
    signal.signal(signal.SIGINT, lambda number, frame: terminate(children))
    codes = []
    for pid in children:
        while True:
            try:
                codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
                break
            except InterruptedError:
                continue
    return max((abs(code) for code in codes), default=0)


def stop_children(children: list[int]) -> None:
    """Stop children whose siblings failed to load, and reap them."""
    terminate(children)
    for pid in children:
        os.waitpid(pid, 0)


def terminate(children: list[int]) -> None:
    """Send SIGTERM to each child still there (each stops gracefully, as one server does)."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
