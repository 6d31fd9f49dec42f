"""serve.py under attack: plain clients' latency while others send explanations, half-sent requests and hang-ups.

    python benchmarks/hostile_load.py                         # the default model, 20 s quiet then 20 s under attack
    python benchmarks/hostile_load.py --model lstm --explainers 6 --stalled 300 --hangups 2

Starts serve.py, runs --clients plain clients (one review per request, keep-alive, as serve_load.py)
for --seconds alone, then again while attackers run: --explainers threads each sending, back to back,
requests of 4 reviews of ~99,000 characters with "explain": 10 to --model; --stalled connections that
send "GET / HTTP/1.1" and nothing more (reopened when the server closes them); --hangups threads
sending half a body and hanging up. Prints the plain clients' reviews/s, p50, p99 and errors in both
runs, what the attackers got (status counts), and how many lines the server logged.
"""

import argparse
import collections
import http.client
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_speed import generate_reviews  # noqa: E402
from serve_load import load, start_server  # noqa: E402

from sentiment.config import DEFAULT_MODEL  # noqa: E402
from sentiment.serving import exports  # noqa: E402


def explainer(port: int, model: str, text: str, stop_at: float, statuses: collections.Counter) -> None:
    """Send heavy explanation requests back to back until ``stop_at``."""
    body = json.dumps({"instances": [text] * 4, "explain": 10})
    while time.perf_counter() < stop_at:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("POST", f"/v1/models/{model}:predict", body=body, headers={"Content-Type": "application/json"})
            statuses[connection.getresponse().status] += 1
            connection.close()
        except OSError:
            statuses["failed"] += 1
        if statuses.get(503):
            time.sleep(0.2)  # told to retry later: do, a little later


def staller(port: int, count: int, stop_at: float, statuses: collections.Counter) -> None:
    """Keep ``count`` connections that never finish their request head, reopening those the server closes."""
    open_ = []
    while time.perf_counter() < stop_at:
        while len(open_) < count:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
                conn.sendall(b"GET / HTTP/1.1\r\n")
                conn.setblocking(False)
                open_.append(conn)
            except OSError:
                statuses["refused"] += 1
                break
        for conn in list(open_):
            try:
                if conn.recv(1) == b"":
                    statuses["closed by server"] += 1
                    conn.close()
                    open_.remove(conn)
            except BlockingIOError:
                pass
            except OSError:
                open_.remove(conn)
        time.sleep(0.2)
    for conn in open_:
        conn.close()


def hanger(port: int, stop_at: float, statuses: collections.Counter) -> None:
    """Send half a body, then hang up, back to back."""
    head = f"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n\r\n".encode()
    while time.perf_counter() < stop_at:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(head + b'{"instances": ["half a review')
            statuses["hung up"] += 1
        except OSError:
            statuses["failed"] += 1
        time.sleep(0.05)


def main() -> None:
    """Measure the plain clients alone, then under attack; print both."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "saved_models"))
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model the explanations ask (default: the default model)")
    parser.add_argument("--plain-model", default=DEFAULT_MODEL, help="the model the plain clients ask (default: the default model)")
    parser.add_argument("--clients", type=int, default=8, help="plain clients (default: 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default: 20)")
    parser.add_argument("--explainers", type=int, default=6)
    parser.add_argument("--stalled", type=int, default=200, help="connections held with half a request head (default: 200)")
    parser.add_argument("--hangups", type=int, default=2, help="threads sending half bodies and hanging up (default: 2)")
    args = parser.parse_args()
    model = exports.resolve_model(args.plain_model, args.models_dir)
    vocabulary = (model / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    reviews = generate_reviews(vocabulary, 2000)
    long_review = " ".join(reviews)[:99_000]
    with tempfile.TemporaryFile("w+") as log:
        proc, port = start_server(args.models_dir, "on", "--default-model", args.plain_model, log=log)
        try:
            quiet = load(port, reviews, args.clients, args.seconds)
            statuses: collections.Counter = collections.Counter()
            stop_at = time.perf_counter() + args.seconds + 5
            attackers = ([threading.Thread(target=explainer, args=(port, args.model, long_review, stop_at, statuses)) for _ in range(args.explainers)]
                         + [threading.Thread(target=staller, args=(port, args.stalled, stop_at, statuses))]
                         + [threading.Thread(target=hanger, args=(port, stop_at, statuses)) for _ in range(args.hangups)])
            for thread in attackers:
                thread.start()
            time.sleep(3)  # the attack under way
            attacked = load(port, reviews, args.clients, args.seconds)
            for thread in attackers:
                thread.join()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        log.seek(0)
        lines = log.read().splitlines()
    print(f"plain clients ask {model}; {args.clients} plain clients, {args.seconds:g} s per run; attack: {args.explainers} explainers "
          f"(4 x 99,000 characters, explain 10, to {args.model}), {args.stalled} stalled connections, {args.hangups} hang-up threads")
    for name, result in (("alone", quiet), ("under attack", attacked)):
        print(f"plain, {name:<12}: {result['reviews_per_s']:7.1f} reviews/s, p50 {result['p50_ms']:7.1f} ms, p99 {result['p99_ms']:7.1f} ms, "
              f"errors {result['errors']}")
    print(f"attackers got: {dict(statuses)}")
    print(f"server log: {len(lines)} lines, {sum('Traceback' in line for line in lines)} tracebacks")


if __name__ == "__main__":
    main()
