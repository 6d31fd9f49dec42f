"""serve.py and sentiment.serving.server: V1 and V2 with predict.py's numbers, hot-loading, bad requests, stopping.

One server (a subprocess on a free loopback port, over the shared tiny exported LSTM) answers the
module's HTTP tests; the request readers and the batcher are also tested in process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_entry

from sentiment import cli
from sentiment.serving import batcher, protocol, routes, server

REVIEWS = ["a wonderful film, loved the story", "the worst and most boring movie", "It was a film.<br />The plot was dull but the actor was great!"]


def start_server(models_dir: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """Start serve.py on a free loopback port; return the process and its base URL once it answers."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--port", "0", "--models-dir", str(models_dir), *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "serving DIR on http://127.0.0.1:PORT/ (...)", printed once the socket listens
    if not line:
        proc.kill()
        raise AssertionError(f"serve.py did not start: {proc.stderr.read()[-2000:]}")
    url = line.split(" on ")[1].split()[0].rstrip("/")
    deadline = time.time() + 30
    while request(url, "GET", "/v2/health/ready")[0] != 200:
        assert time.time() < deadline and proc.poll() is None, "the server never became ready"
        time.sleep(0.05)
    return proc, url


def request(url: str, method: str, path: str, body: object = None, raw: bytes | None = None, headers: dict | None = None) -> tuple[int, object]:
    """Send one request; return (status, decoded JSON body or None), or (0, None) if nothing answered."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        content = response.read()
    except ConnectionError:
        return 0, None
    finally:
        connection.close()
    try:
        return response.status, json.loads(content)
    except ValueError:
        return response.status, None


@pytest.fixture(scope="module")
def models_dir(saved_model, tmp_path_factory) -> Path:
    """A models dir of its own (the hot-load test adds a version): the shared tiny LSTM as lstm/1."""
    root = tmp_path_factory.mktemp("served") / "models"
    shutil.copytree(saved_model / "lstm", root / "lstm")
    return root


@pytest.fixture(scope="module")
def live(models_dir):
    """The running server's base URL (and its process, stopped at the end of the module)."""
    proc, url = start_server(models_dir, "--default-model", "lstm", "--poll-seconds", "0.2")
    yield proc, url
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def predict_py(models_dir: Path, capsys, *extra: str) -> list[dict]:
    """predict.py's JSON rows for REVIEWS (LiteRT engine, as the server runs)."""
    code, out, err = run_entry("predict.py", [*REVIEWS, "--model", "lstm", "--models-dir", str(models_dir), "--engine", "litert",
                                              "--format", "json", *extra], capsys)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_v1_and_v2_give_predict_py_probabilities_labels_and_reasons(live, models_dir, capsys):
    _, url = live
    expected = predict_py(models_dir, capsys, "--explain", "2")
    status, body = request(url, "POST", "/v1/models/lstm:predict", {"instances": REVIEWS, "explain": 2})
    assert status == 200, body
    for row, want in zip(body["predictions"], expected, strict=True):
        assert abs(row["probability"] - want["probability"]) <= 1e-5
        assert row["label"] == want["label"] and row["reasons"] == want["reasons"]
    status, alias = request(url, "POST", "/v1/models/sentiment:predict", {"instances": [{"text": t} for t in REVIEWS]})
    assert status == 200 and [r["probability"] for r in alias["predictions"]] == [r["probability"] for r in body["predictions"]]
    status, columns = request(url, "POST", "/v1/models/lstm:predict", {"inputs": {"text": REVIEWS}})
    assert status == 200 and columns["outputs"]["label"] == [r["label"] for r in expected]
    v2 = {"inputs": [{"name": "text", "shape": [len(REVIEWS)], "datatype": "BYTES", "data": REVIEWS}]}
    status, body = request(url, "POST", "/v2/models/lstm/infer", v2)
    assert status == 200, body
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert np.allclose(outputs["probability"], [r["probability"] for r in expected], atol=1e-5, rtol=0)
    assert outputs["label"] == [r["label"] for r in expected] and body["model_version"] == "1"


def test_status_health_metrics_and_the_page(live):
    _, url = live
    assert request(url, "GET", "/v1/models/lstm") == (200, {"name": "lstm", "ready": True, "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert request(url, "GET", "/v1/models/lstm/versions/1")[0] == 200
    assert request(url, "GET", "/v2/health/live") == (200, {"live": True})
    assert request(url, "GET", "/v2/health/ready") == (200, {"ready": True})
    assert request(url, "GET", "/") == (200, {"status": "alive"})  # KServe's liveness, for anything but a browser
    assert request(url, "GET", "/v2/models/sentiment")[1]["inputs"][0]["datatype"] == "BYTES"
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/", headers={"Accept": "text/html"})
    assert b'src="/page/page.js"' in connection.getresponse().read()
    connection.request("GET", "/metrics")
    assert b"request_predict_seconds" in connection.getresponse().read()
    connection.close()


BAD_REQUESTS = [  # (what, method, path, JSON body or raw bytes, status)
    ("invalid JSON", "/v1/models/lstm:predict", b'{"instances": [', 400),
    ("not an object", "/v1/models/lstm:predict", ["a review"], 400),
    ("instances not a list", "/v1/models/lstm:predict", {"instances": "a review"}, 400),
    ("a number for a review", "/v1/models/lstm:predict", {"instances": [3]}, 400),
    ("a nested list", "/v1/models/lstm:predict", {"instances": [["a review"]]}, 400),
    ("an empty list", "/v1/models/lstm:predict", {"instances": []}, 400),
    ("an unknown field", "/v1/models/lstm:predict", {"instances": ["good"], "instance": 1}, 400),
    ("rows and columns", "/v1/models/lstm:predict", {"instances": ["good"], "inputs": ["good"]}, 400),
    ("another signature", "/v1/models/lstm:predict", {"instances": ["good"], "signature_name": "x"}, 400),
    ("too many instances", "/v1/models/lstm:predict", {"instances": ["good"] * 1025}, 400),
    ("NUL bytes", "/v1/models/lstm:predict", {"instances": ["\x00" * 10]}, 400),
    ("a NUL inside a review", "/v1/models/lstm:predict", {"instances": ["good\x00film"]}, 400),
    ("1 MB of text", "/v1/models/lstm:predict", {"instances": ["great " * 170_000]}, 400),
    ("an empty review", "/v1/models/lstm:predict", {"instances": ["  "]}, 400),
    ("only punctuation", "/v1/models/lstm:predict", {"instances": ["...,;"]}, 400),
    ("explain not a number", "/v1/models/lstm:predict", {"instances": ["good"], "explain": "3"}, 400),
    ("explain too large", "/v1/models/lstm:predict", {"instances": ["good"], "explain": 1000}, 400),
    ("explaining too many reviews", "/v1/models/lstm:predict", {"instances": ["good"] * 5, "explain": 1}, 400),
    ("an unknown model", "/v1/models/nope:predict", {"instances": ["good"]}, 404),
    ("an unknown version", "/v1/models/lstm/versions/7:predict", {"instances": ["good"]}, 404),
    ("an unknown version's status", "/v1/models/lstm/versions/7", None, 404),
    ("V2: wrong type", "/v2/models/lstm/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, 400),
    ("V2: wrong shape", "/v2/models/lstm/infer", {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]}]}, 400),
    ("V2: two inputs", "/v2/models/lstm/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}] * 2}, 400),
    ("V2: empty", "/v2/models/lstm/infer", {"inputs": [{"name": "text", "shape": [0], "datatype": "BYTES", "data": []}]}, 400),
    ("V2: not a tensor list", "/v2/models/lstm/infer", {"inputs": 5}, 422),
    ("V2: unknown model", "/v2/models/nope/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}, 404),
    ("V2: unknown version", "/v2/models/lstm/versions/7/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]}, 404),
    ("unloading the default model", "/v2/repository/models/sentiment/unload", {}, 403),  # KServe's repository extension: read-only here
    ("unloading a model", "/v2/repository/models/lstm/unload", {}, 403),
    ("loading a model", "/v2/repository/models/lstm/load", {}, 403),
]


@pytest.mark.parametrize("what,path,body,status", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_json_error_and_the_server_keeps_serving(live, what, path, body, status):
    proc, url = live
    method = "GET" if body is None else "POST"
    raw = body if isinstance(body, bytes) else None
    got, answer = request(url, method, path, None if raw else body, raw=raw)
    assert got == status and isinstance(answer, dict) and (answer.get("error") or answer.get("detail")), (got, answer)
    assert request(url, "POST", "/v1/models/lstm:predict", {"instances": ["good film"]})[0] == 200
    assert request(url, "POST", "/v1/models/sentiment:predict", {"instances": ["good film"]})[0] == 200
    assert proc.poll() is None


def binary_v2(reviews: list[bytes], size: int | None = None, datatype: str = "BYTES", tensor: bytes | None = None) -> tuple[bytes, int]:
    """A V2 request in the binary extension (body, head length): the JSON head, then each review as a 4-byte little-endian length and its bytes."""
    tensor = b"".join(len(r).to_bytes(4, "little") + r for r in reviews) if tensor is None else tensor
    head = json.dumps({"inputs": [{"name": "text", "shape": [len(reviews)], "datatype": datatype,
                                   "parameters": {"binary_data_size": len(tensor) if size is None else size}}]}).encode()
    return head + tensor, len(head)


BAD_BINARY_V2 = [  # (what, body, the inference-header-content-length header)
    ("a length that is not a number", binary_v2([b"good"])[0], "abc"),
    ("a review's length prefix past the end", *binary_v2([b"good"], tensor=b"\xff\xff\xff\x7fgood")),
    ("a negative tensor size", *binary_v2([b"good"], size=-3)),
    ("bytes that are not UTF-8", *binary_v2([b"\xff\xfe\xfd"])),
    ("a tensor not a whole number of FP32s", *binary_v2([b"good"], datatype="FP32")),
    ("a head without inputs", b'{"x": 1}', "8"),
    ("inputs not a list of tensors", b'{"inputs": 5}', "13"),
]


@pytest.mark.parametrize("what,body,head_length", BAD_BINARY_V2, ids=[b[0] for b in BAD_BINARY_V2])
def test_a_malformed_binary_v2_request_gets_a_400_json_error(live, what, body, head_length):
    proc, url = live
    headers = {"Content-Type": "application/octet-stream", "inference-header-content-length": str(head_length)}
    got, answer = request(url, "POST", "/v2/models/lstm/infer", raw=body, headers=headers)
    assert got == 400 and isinstance(answer, dict) and answer.get("error"), (got, answer)
    body, head_length = binary_v2([b"good film"])
    got, answer = request(url, "POST", "/v2/models/lstm/infer", raw=body, headers={**headers, "inference-header-content-length": str(head_length)})
    assert got == 200 and [o["data"] for o in answer["outputs"] if o["name"] == "label"] in ([["positive"]], [["negative"]]), answer
    assert proc.poll() is None


SIZE_MISMATCHES = [  # (what, body, head length, the field the error names)
    ("a length that is not a number", binary_v2([b"good"])[0], "abc", "inference-header-content-length"),
    ("a head length past the body", binary_v2([b"good"])[0], "99999", "inference-header-content-length"),
    ("a tensor size past the body", *binary_v2([b"good"], size=999), "binary_data_size"),
    ("trailing bytes after the tensors", binary_v2([b"good"])[0] + b"junk", binary_v2([b"good"])[1], "binary_data_size"),
]


@pytest.mark.parametrize("what,body,head_length,field", SIZE_MISMATCHES, ids=[m[0] for m in SIZE_MISMATCHES])
def test_binary_sizes_are_checked_against_the_body_naming_the_field(live, what, body, head_length, field):
    _, url = live
    headers = {"Content-Type": "application/octet-stream", "inference-header-content-length": str(head_length)}
    got, answer = request(url, "POST", "/v2/models/lstm/infer", raw=body, headers=headers)
    assert got == 400 and field in answer["error"] and "invalid literal" not in answer["error"], answer


def test_v2_refuses_unknown_inputs_and_outputs_and_gives_only_what_was_asked(live):
    _, url = live
    tensor = {"shape": [1], "datatype": "BYTES", "data": ["good film"]}
    got, answer = request(url, "POST", "/v2/models/lstm/infer", {"inputs": [{"name": "txet", **tensor}]})
    assert got == 400 and "unknown input 'txet'" in answer["error"]
    got, answer = request(url, "POST", "/v2/models/lstm/infer", {"inputs": [{"name": "text", **tensor}], "outputs": [{"name": "logits"}]})
    assert got == 400 and "unknown output 'logits'" in answer["error"]
    got, answer = request(url, "POST", "/v2/models/lstm/infer", {"inputs": [{"name": "text", **tensor}], "outputs": [{"name": "label"}]})
    assert got == 200 and [o["name"] for o in answer["outputs"]] == ["label"]


def test_a_body_over_the_limit_gets_413_before_it_is_read(live):
    _, url = live
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:  # declares 10 MB + 1, sends a little of it
        conn.sendall(f"POST /v1/models/lstm:predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode() +
                     b"Content-Length: 10000001\r\n\r\n" + b'{"instances": ["' + b"a" * 1000)
        reply = b""
        while b'"error"' not in reply and (chunk := conn.recv(65536)):  # the head and the body may come apart
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b'"error"' in reply
    assert request(url, "POST", "/v1/models/lstm:predict", {"instances": ["good film"]})[0] == 200


def test_a_new_version_is_served_without_a_restart(live, models_dir):
    _, url = live
    staging = models_dir / "lstm" / ".2.tmp"  # written under a hidden name, then renamed: as export_model.py does
    shutil.copytree(models_dir / "lstm" / "1", staging)
    staging.rename(models_dir / "lstm" / "2")
    deadline = time.time() + 15
    while request(url, "GET", "/v1/models/sentiment")[1]["model_version_status"][0]["version"] != "2":
        assert time.time() < deadline, "version 2 was never loaded"
        time.sleep(0.1)
    v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good film"]}]}
    status, body = request(url, "POST", "/v2/models/lstm/versions/2/infer", v2)
    assert status == 200 and body["model_version"] == "2"
    assert request(url, "POST", "/v1/models/lstm/versions/1:predict", {"instances": ["good"]})[0] == 404


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver key of an element reference


class Browser:
    """Headless Chromium driven through chromedriver's W3C WebDriver HTTP API (no client library needed)."""

    def __init__(self, tmp_path: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while request(f"http://127.0.0.1:{self.port}", "GET", "/status")[0] != 200:
            assert time.time() < deadline and self.driver.poll() is None, "chromedriver did not start"
            time.sleep(0.05)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}"]
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None) -> object:
        """One WebDriver command; return its value."""
        status, answer = request(f"http://127.0.0.1:{self.port}", method, path, body if body is not None or method == "GET" else {})
        assert status == 200, answer
        return answer["value"]

    def command(self, method: str, path: str, body: dict | None = None) -> object:
        """A command of this session."""
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css: str) -> list[str]:
        """The elements matching a CSS selector."""
        found = self.command("POST", "/elements", {"using": "css selector", "value": css})
        assert all(ELEMENT in e for e in found), found
        return [e[ELEMENT] for e in found]

    def text(self, css: str) -> str:
        """The visible text of the first element matching a CSS selector."""
        return self.command("GET", f"/element/{self.find(css)[0]}/text")

    def wait_for_text(self, css: str, seconds: float = 20) -> str:
        """Wait until the first element matching a CSS selector shows text; return it."""
        deadline = time.time() + seconds
        while not (self.find(css) and self.text(css)):
            assert time.time() < deadline, f"nothing appeared in {css}"
            time.sleep(0.1)
        return self.text(css)

    def close(self) -> None:
        """End the session and chromedriver."""
        try:
            self.command("DELETE", "")
        finally:
            self.driver.kill()
            self.driver.wait()


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)")
def test_the_page_classifies_a_typed_review_and_highlights_its_words_in_a_browser(live, tmp_path):
    _, url = live
    browser = Browser(tmp_path)
    try:
        browser.command("POST", "/url", {"url": url + "/"})
        review = "the worst and most boring movie"
        box = browser.find("#review")[0]
        browser.command("POST", f"/element/{box}/value", {"text": review})
        browser.command("POST", f"/element/{browser.find('#classify')[0]}/click", {})
        label = browser.wait_for_text("#label")
        status, body = request(url, "POST", "/v1/models/sentiment:predict", {"instances": [review], "explain": 3})
        want = body["predictions"][0]
        assert label.lower() == want["label"]
        assert browser.text("#probability") == f"P(positive) = {want['probability']:.3f}"
        marked = {browser.command("GET", f"/element/{e}/text") for e in browser.find("#highlighted mark")}
        reasons = {r["phrase"] for side in ("positive", "negative") for r in want["reasons"][side]}
        assert marked and marked == reasons
        assert browser.text("#highlighted") == review

        browser.command("POST", "/url", {"url": url + "/?text=" + urllib.parse.quote("a wonderful film, loved the story")})
        assert browser.wait_for_text("#label").lower() in ("positive", "negative")
        assert browser.command("GET", f"/element/{browser.find('#review')[0]}/property/value") == "a wonderful film, loved the story"
    finally:
        browser.close()


def test_sigterm_stops_the_server_within_seconds(live):
    proc, url = live
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.time() - started < 5
    assert "Traceback" not in proc.stderr.read()


def test_several_processes_serve_one_port_and_stop_together(models_dir):
    """--workers 2: two processes answer on the port (each request gets the one-process answer); SIGTERM stops both, exit 0."""
    proc, url = start_server(models_dir, "--workers", "2")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda i: request(url, "POST", "/v1/models/lstm:predict", {"instances": [f"a fine film {i}", "awful"]}),
                                    range(40)))
        assert all(status == 200 and len(body["predictions"]) == 2 for status, body in replies)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z" for pid in children)
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_serve_py_refuses_a_models_dir_without_models_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--port", "0", "--models-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no servable model in")
    result = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--port", "0", "--workers", "2", "--models-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # the serving processes' error, reported once by the parent
    assert result.stderr.strip().splitlines()[-1].startswith("error: no servable model in")


@pytest.mark.parametrize("flag,value", [("--port", "70000"), ("--port", "-1"), ("--poll-seconds", "nan"), ("--poll-seconds", "-1"),
                                        ("--poll-seconds", "inf"), ("--max-body-bytes", "0"), ("--max-instances", "10000000000")])
def test_serve_py_refuses_a_flag_out_of_range_before_it_starts(flag, value):
    from sentiment.commands import serve  # the entry point's parser, in process: a refused flag never gets as far as a server

    with pytest.raises(cli.UsageError, match=f"argument {flag}: .*is not between"):
        serve.parse_args([flag, value])
    assert serve.parse_args(["--port", "0", "--poll-seconds", "0"]).poll_seconds == 0


LIMITS = server.Limits()


def test_v1_reviews_reads_rows_objects_and_columns():
    assert protocol.v1_reviews({"instances": ["a good film", {"text": "bad"}]}, LIMITS) == (["a good film", "bad"], 0, False)
    assert protocol.v1_reviews({"inputs": ["good"], "explain": 2}, LIMITS) == (["good"], 2, True)
    assert protocol.v1_reviews({"inputs": {"text": ["good"]}, "signature_name": "serving_default"}, LIMITS) == (["good"], 0, True)
    with pytest.raises(protocol.InvalidInput, match=r"instances\[1\]: empty review"):
        protocol.v1_reviews({"instances": ["good", ""]}, LIMITS)
    with pytest.raises(protocol.InvalidInput, match="not a boolean"):
        protocol.v1_reviews({"instances": [True]}, LIMITS)


def test_the_batcher_scores_concurrent_requests_together_in_order():
    calls = []

    class Model:
        def score(self, texts: list[str]) -> np.ndarray:
            calls.append(list(texts))
            time.sleep(0.02)
            return np.array([len(t) for t in texts], np.float32)

    model = Model()

    async def main(batching: bool) -> list:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            scorer = batcher.Batcher(executor, batching, max_batch=6)  # a new bound method each time, as the server passes them
            return await asyncio.gather(*(scorer.score(model.score, ["x" * i, "y"]) for i in range(1, 6)))

    results = asyncio.run(main(True))
    assert [list(r) for r in results] == [[i, 1] for i in range(1, 6)]
    assert [len(c) for c in calls] == [6, 4]  # all five arrived together: batches of at most max_batch reviews
    calls.clear()
    asyncio.run(main(False))
    assert [len(c) for c in calls] == [2] * 5


def test_body_limit_counts_a_chunked_body():
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())

    async def main(chunks: list[bytes]) -> list[dict]:
        sent, incoming = [], [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

        async def receive():
            return incoming.pop(0)

        async def send(message):
            sent.append(message)

        await routes.BodyLimit(app, limit=10)({"type": "http", "method": "POST", "path": "/", "headers": []}, receive, send)
        return sent

    assert main and asyncio.run(main([b"12345", b"67890"])) == [] and seen[0]["body"] == b"1234567890"
    sent = asyncio.run(main([b"12345", b"67890", b"1"]))
    assert sent[0]["status"] == 413 and len(seen) == 1


@pytest.mark.slow
def test_hot_reload_retries_a_version_completed_later_and_lets_go_of_deleted_ones(saved_model, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(saved_model / "lstm", root / "lstm")
    proc, url = start_server(root, "--default-model", "lstm", "--poll-seconds", "0.2")

    def served_version(deadline: float = 15) -> str | None:
        status, body = request(url, "GET", "/v1/models/lstm")
        return body["model_version_status"][0]["version"] if status == 200 else None

    def wait_for(version: str | None) -> None:
        deadline = time.time() + 15
        while served_version() != version:
            assert time.time() < deadline, f"never served {version}"
            time.sleep(0.1)

    try:
        half = root / "lstm" / "2"  # a copy under way: everything but the file an export writes last
        shutil.copytree(root / "lstm" / "1", half, ignore=shutil.ignore_patterns("checksums.json"))
        time.sleep(1.5)
        assert served_version() == "1"
        shutil.copy2(root / "lstm" / "1" / "assets.extra" / "checksums.json", half / "assets.extra" / "checksums.json")
        wait_for("2")  # completed under the same number: tried again and served
        shutil.rmtree(half)
        wait_for("1")  # the newest version deleted: the one before it serves again
        shutil.rmtree(root / "lstm")
        wait_for(None)  # the model deleted: no longer served (404), as TF Serving unloads it
    finally:
        proc.terminate()
        _, log = proc.communicate(timeout=30)
    assert "is incomplete (no assets.extra/checksums.json" in log and "--add-litert" not in log
    assert "serving lstm version 2 (was version 1)" in log and "no longer served" in log


@pytest.mark.slow
def test_half_sent_requests_are_closed_and_leave_one_line_while_others_are_served(saved_model, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(saved_model / "lstm", root / "lstm")
    proc, url = start_server(root, "--default-model", "lstm", "--head-seconds", "1", "--body-seconds", "1")
    host, port = url.removeprefix("http://").split(":")
    try:
        stalled = []
        for _ in range(50):  # a request line and nothing more: never a whole head
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(b"GET / HTTP/1.1\r\n")
            stalled.append(conn)
        assert request(url, "POST", "/v1/models/lstm:predict", {"instances": ["good film"]})[0] == 200  # others are served
        assert all(conn.recv(100) == b"" for conn in stalled)  # closed by the server (else recv times out after 10 s)
        for conn in stalled:
            conn.close()
        for _ in range(5):  # half a body, then the client hangs up
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(f"POST /v1/models/lstm:predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 1000\r\n\r\n".encode()
                             + b'{"instances": [')
        with socket.create_connection((host, int(port)), timeout=10) as conn:  # half a body, then silence: 408
            conn.sendall(f"POST /v1/models/lstm:predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 1000\r\n\r\n{{".encode())
            assert conn.recv(100).startswith(b"HTTP/1.1 408")
        time.sleep(0.5)
        assert request(url, "POST", "/v1/models/lstm:predict", {"instances": ["good film"]})[0] == 200
    finally:
        proc.terminate()
        _, log = proc.communicate(timeout=30)
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]
    assert log.count("the client left before sending its whole body") == 5


@pytest.mark.slow
def test_sigterm_with_requests_in_flight_answers_each_in_json_and_exits_within_the_grace_period(saved_model, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(saved_model / "lstm", root / "lstm")
    proc, url = start_server(root, "--default-model", "lstm", "--max-instances", "2048")
    big = {"instances": [("a long and winding review of a film that goes on and on " * 40) + str(i) for i in range(2048)]}
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = [pool.submit(request, url, "POST", "/v1/models/lstm:predict", big) for _ in range(20)]
        time.sleep(1.0)  # all sent; most still waiting for the one inference thread
        stopped = time.time()
        proc.send_signal(signal.SIGTERM)
        answers = [r.result() for r in replies]
    _, log = proc.communicate(timeout=30)
    seconds = time.time() - stopped
    assert proc.returncode == 0 and seconds < 5 + 3, seconds  # the grace period, and a little
    assert all(status in (200, 503) and isinstance(body, dict) for status, body in answers), [a[0] for a in answers]
    assert all("retry" in body["error"] for status, body in answers if status == 503)  # how many: the machine's speed
    assert "Traceback" not in log and "CancelledError" not in log and "Cancel " not in log, log[-3000:]
