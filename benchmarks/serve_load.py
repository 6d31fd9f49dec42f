"""serve.py under load: N concurrent clients on loopback for a bounded time, beside predict.py's batch throughput.

    python benchmarks/serve_load.py --clients 1 8 32 --seconds 20            # the shipped default model
    python benchmarks/serve_load.py --clients 8 32 --batching on off         # does batching pay?
    python benchmarks/serve_load.py --predict-reviews 2000                   # also predict.py on a file of them

Starts serve.py (a subprocess, on a free port, with --models-dir), then for each --clients N and
each --batching mode, N threads each send one review per request (V1 predict) back to back, on one
keep-alive connection each, for --seconds. Prints, per run: reviews/s, p50 and p99 latency,
errors (non-200 answers or failed connections) and the server's peak RSS (VmHWM). The reviews are
generated IMDB-like ones (benchmarks/predict_speed.py's generator on the model's vocabulary).
With --predict-reviews K, predict.py classifies K of the same reviews from a file (whole process,
LiteRT, its default worker processes) for comparison. Clients and server share the machine's
cores: figures are for this machine as a whole, not for the server alone.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_speed import generate_reviews  # noqa: E402

from sentiment.config import DEFAULT_MODEL  # noqa: E402
from sentiment.serving import exports  # noqa: E402


def start_server(models_dir: str, batching: str, *flags: str, log: int | None = subprocess.DEVNULL) -> tuple[subprocess.Popen, int]:
    """Start serve.py on a free port (with more ``flags``); return it and its port once it is ready."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--port", "0", "--models-dir", models_dir, "--batching", batching, *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"serve.py did not start (exit {proc.wait()})")
    port = int(line.split(" on ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
    deadline = time.time() + 60
    while not ready(port):
        if time.time() > deadline:
            raise SystemExit("serve.py never became ready")
        time.sleep(0.1)
    return proc, port


def ready(port: int) -> bool:
    """True once the server answers its readiness check."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/v2/health/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client(port: int, reviews: list[str] | None, start: int, stop_at: float, latencies: list[float], errors: list[int]) -> None:
    """Send one review per request (``reviews`` None: a bare readiness check), back to back on one connection, until ``stop_at``;
    record each latency or error."""
    connection, i = http.client.HTTPConnection("127.0.0.1", port, timeout=60), start
    while time.perf_counter() < stop_at:
        body = json.dumps({"instances": [reviews[i % len(reviews)]]}) if reviews else None
        started = time.perf_counter()
        try:
            if body is None:
                connection.request("GET", "/v2/health/ready")
            else:
                connection.request("POST", "/v1/models/sentiment:predict", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except OSError:
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            errors.append(1)
        i += 1
    connection.close()


def load(port: int, reviews: list[str] | None, clients: int, seconds: float) -> dict:
    """Run ``clients`` clients for ``seconds``; return reviews (or, ``reviews`` None, readiness checks) a second, latency percentiles (ms)
    and errors."""
    latencies: list[float] = []
    errors: list[int] = []
    stop_at = time.perf_counter() + seconds
    threads = [threading.Thread(target=client, args=(port, reviews, n * 997, stop_at, latencies, errors)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    percentile = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")  # noqa: E731
    return {"reviews_per_s": len(latencies) / elapsed, "p50_ms": percentile(0.50), "p99_ms": percentile(0.99), "errors": len(errors)}


def predict_throughput(model: Path, reviews: list[str]) -> float:
    """predict.py's reviews/s on a file of these reviews (whole process, start-up included)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
        handle.write("\n".join(reviews) + "\n")
        handle.flush()
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "predict.py"), "--file", handle.name, "--model", str(model), "--format", "json"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return len(reviews) / (time.perf_counter() - started)


def main() -> None:
    """Measure and print one line per (batching, clients) run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "saved_models"), help="served by serve.py (default: saved_models/)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients, one run each (default: 1 8 32)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default: 20)")
    parser.add_argument("--batching", choices=("on", "off"), nargs="+", default=["on"], help="serve.py --batching modes to run (default: on)")
    parser.add_argument("--reviews", type=int, default=2000, help="distinct generated reviews to send (default: 2000)")
    parser.add_argument("--predict-reviews", type=int, default=0, help="also time predict.py on this many of the reviews (default: 0, skip)")
    args = parser.parse_args()
    model = exports.resolve_model(DEFAULT_MODEL, args.models_dir)
    vocabulary = (model / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")  # as predict_speed.py reads it
    reviews = generate_reviews(vocabulary, args.reviews)
    print(f"model {model}; {len(reviews)} generated reviews, median {statistics.median(len(r.split()) for r in reviews):.0f} words; "
          f"{args.seconds:g} s per run", flush=True)
    for batching in args.batching:
        proc, port = start_server(args.models_dir, batching)
        try:
            for clients in args.clients:
                result = load(port, reviews, clients, args.seconds)
                print(f"batching {batching:<3} clients {clients:>3}: {result['reviews_per_s']:7.1f} reviews/s, p50 {result['p50_ms']:7.1f} ms, "
                      f"p99 {result['p99_ms']:7.1f} ms, errors {result['errors']}, server peak RSS {peak_rss_mb(proc.pid):.0f} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if args.predict_reviews:
        rate = predict_throughput(model, reviews[: args.predict_reviews])
        print(f"predict.py --file ({args.predict_reviews} reviews, whole process): {rate:.1f} reviews/s", flush=True)


if __name__ == "__main__":
    main()
