"""Serve the exported models over HTTP, on KServe's Python model server, without TensorFlow.

    python serve.py                                    # http://127.0.0.1:8080, every model in saved_models/
    python serve.py --host 0.0.0.0 --port 8501         # reachable from other machines

Every folder of --models-dir is a model of that name serving its newest version (its LiteRT
twin); the default model is also reachable as "sentiment". A newer version written there is
picked up within --poll-seconds, without a restart. Open http://127.0.0.1:8080/ in a browser to
try it, or (TF Serving's REST API, KServe's V1 protocol):

    curl -d '{"instances": ["Great film"]}' http://127.0.0.1:8080/v1/models/sentiment:predict

V2 (Open Inference Protocol) at /v2/models/NAME/infer; /v2/health/live, /v2/health/ready and
/metrics (Prometheus) as KServe provides them. Ctrl-C or SIGTERM stops it.

Bounds on every request (docs/security.md): its body (--max-body-bytes), its reviews
(--max-instances, 100,000 characters each), and explanations ("explain": K reasons each way, at
most 10): at most --max-explain-reviews reviews per request, --explain-seconds of scoring per
request (what is left is said in the reply's "cut" note), one explanation at a time with at most
--max-explain-waiting queued (more get 503 and Retry-After). Explanations score in chunks of 32
shortened reviews that yield to waiting predictions, so a prediction waits for one chunk at most.
A browser's cross-site request, and on loopback a foreign Host, get 403. Connections: a request
head must arrive whole within --head-seconds (else the connection is closed), a body may pause
--body-seconds (else 408), at most --max-connections are open (past it, 503).
"""

import argparse
import socket
import sys
from pathlib import Path
from typing import Callable

from sentiment import cli
from sentiment.config import DEFAULT_MODEL
from sentiment.errors import SentimentError

BATCHING = {"on": True, "off": False}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=cli.int_between(0, 65535), default=8080, help="port to listen on (default: 8080; 0 picks a free one)")
    cli.add_models_dir_flag(parser)
    parser.add_argument("--default-model", default=DEFAULT_MODEL, help=f"the model also served as 'sentiment' (default: {DEFAULT_MODEL})")
    parser.add_argument("--max-body-bytes", type=cli.int_between(1, 2**31 - 1), default=10_000_000, help="largest request body accepted, else 413 (default: 10 MB)")
    parser.add_argument("--max-instances", type=cli.int_between(1, 1_000_000), default=1024, help="most reviews in one request (default: 1024)")
    parser.add_argument("--max-explain-reviews", type=cli.int_between(1, 1024), default=4, help="most reviews one request may ask to explain (default: 4)")
    parser.add_argument("--explain-seconds", type=cli.number_between(0.1, 600), default=10.0,
                        help="scoring time one explanation request may take, its reviews together (default: 10)")
    parser.add_argument("--max-explain-waiting", type=cli.int_between(0, 1000), default=2,
                        help="explanations that may wait behind the one running; more get 503 (default: 2)")
    parser.add_argument("--head-seconds", type=cli.number_between(0.1, 3600), default=10.0,
                        help="a connection's request head must arrive whole within this, else it is closed (default: 10)")
    parser.add_argument("--body-seconds", type=cli.number_between(0.1, 3600), default=30.0,
                        help="longest pause inside a request body, else 408 (default: 30)")
    parser.add_argument("--max-connections", type=cli.int_between(1, 1_000_000), default=2048,
                        help="open connections at most; past it requests get 503 (default: 2048)")
    parser.add_argument("--batching", choices=BATCHING, default="on", help="score reviews of concurrent requests together (default: on)")
    parser.add_argument("--poll-seconds", type=cli.number_between(0, 86_400), default=2.0, help="how often --models-dir is read for new versions (default: 2; 0: never)")
    parser.add_argument("--access-log", action="store_true", help="log one line per request")
    parser.add_argument("--workers", type=cli.int_between(1, 64), default=1,
                        help="serving processes on the one port, each with its own copy of the models: one per core serves the most (default: 1)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Load the models, listen, and serve until SIGTERM or Ctrl-C."""
    args = parse_args(argv)
    cli.setup_logging(verbose=True)
    from sentiment.serving import server  # KServe loads here, after the command line is checked

    server.quiet_logs(args.access_log)
    limits = server.Limits(max_body_bytes=args.max_body_bytes, max_instances=args.max_instances, max_explain_reviews=args.max_explain_reviews,
                           explain_seconds=args.explain_seconds, max_explain_waiting=args.max_explain_waiting)
    settings = server.Settings(Path(args.models_dir), args.default_model, args.host, args.port, limits,
                               batching=BATCHING[args.batching], poll_seconds=args.poll_seconds, access_log=args.access_log,
                               head_seconds=args.head_seconds, body_seconds=args.body_seconds, max_connections=args.max_connections)
    sock = server.open_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if args.workers == 1:
        built = server.build(settings)
        print(f"serving {settings.models_dir} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        built.run(sock)
        return 0
    from sentiment.serving import processes

    def serve(sock: socket.socket, ready: Callable[[], None]) -> None:
        built = server.build(settings)
        ready()
        built.run(sock)

    children, error = processes.serve_in_children(sock, args.workers, serve)
    if error:
        processes.stop_children(children)
        raise SentimentError(error)
    print(f"serving {settings.models_dir} on http://{host}:{port}/ with {args.workers} processes (Ctrl-C stops)", flush=True)
    return processes.wait_for_children(children)


def run() -> int:
    """The installed command: main on sys.argv, errors as one line."""
    return cli.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
