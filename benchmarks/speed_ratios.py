"""Issue 37's figures in one run, as ratios (these machines drift; absolute times do not hold from run to run).

    python benchmarks/speed_ratios.py                       # the default model, generated IMDB-like reviews
    python benchmarks/speed_ratios.py --model lstm --reviews-file reviews.txt
    python benchmarks/speed_ratios.py --also lstm              # + lstm's batch time as a ratio to the default's

Prints, for one exported model:
* ``import numpy`` as a whole process (the unit), paired run by run with predict.py on one review and on --reviews
  reviews from a file: the ratios to it (medians of --runs pairs);
* the engine in process (LiteRT, one process): one review of median length, 8 and 64 reviews (median ms);
* the server (serve.py, batching on): 1, 8 and 32 clients each sending one review per request for --seconds:
  reviews/s, p50, p99, and 8 clients' reviews/s as a share of predict.py's batch reviews/s; then 8 clients sending
  a bare readiness check: the HTTP stack's and the clients' own ceiling on these cores, as the same share;
* with --also MODEL: predict.py on the same file with MODEL, paired run by run with --model (the ratio of their times);
* the floor of the batch ratio: the recurrent branch's own arithmetic for the --reviews reviews (tokenized first, in
  process, one thread), shared by every core, as a ratio to ``import numpy``: no engine can score them faster exactly.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_speed import generate_reviews, run_process  # noqa: E402
from serve_load import load, start_server  # noqa: E402

from sentiment.serving import exports, litert_engine  # noqa: E402


def paired(unit: list[str], command: list[str], runs: int) -> tuple[float, float, float]:
    """Median seconds of ``unit`` and ``command`` run alternately (after one run of each: caches warm, bytecode written), and the median of their per-pair ratios."""
    run_process(unit), run_process(command)
    pairs = [(run_process(unit)[0], run_process(command)[0]) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs), statistics.median(p[1] / p[0] for p in pairs)


def engine_ms(model: Path, reviews: list[str], n: int, repeats: int = 30) -> float:
    """Median milliseconds of the in-process engine on ``n`` reviews (one process, no workers)."""
    predictor = litert_engine.LiteRTPredictor(model, workers=1)
    texts = reviews[:n]
    predictor.probabilities(texts)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.probabilities(texts)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def branch_seconds(model: Path, reviews: list[str]) -> float:
    """Seconds of the LiteRT recurrent branch alone on every review (tokenized beforehand; one process, one thread, best of 3)."""
    classifier = litert_engine.LiteRTPredictor(model, workers=1).classifier
    token_ids = [classifier.tokenizer.encode(text).token_ids for text in reviews]
    classifier.branch_outputs(token_ids[:64])
    times = []
    for _ in range(3):
        started = time.perf_counter()
        classifier.branch_outputs(token_ids)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Measure and print every figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wide_lstm", help="a name under --models-dir, or a version dir (default: wide_lstm)")
    parser.add_argument("--models-dir", default=str(ROOT / "saved_models"))
    parser.add_argument("--reviews", type=int, default=4964)
    parser.add_argument("--reviews-file", help="real reviews, one per line (default: generated IMDB-like ones)")
    parser.add_argument("--runs", type=int, default=7, help="pairs of whole-process runs (default: 7)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each server run (default: 15)")
    parser.add_argument("--also", help="another model whose batch time is printed as a ratio to --model's (e.g. lstm)")
    parser.add_argument("--server-workers", type=int, default=1, help="serve.py --workers for the server figures (default: 1)")
    args = parser.parse_args()
    model = exports.resolve_model(args.model, args.models_dir)
    if args.reviews_file:
        reviews = [line for line in Path(args.reviews_file).read_text(encoding="utf-8").split("\n") if line.strip()][: args.reviews]
    else:
        reviews = generate_reviews((model / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8").split("\n"), args.reviews)
    typical = sorted(reviews, key=len)[len(reviews) // 2]
    print(f"model {model}; {len(reviews):,} reviews ({'from ' + args.reviews_file if args.reviews_file else 'generated'}), "
          f"the median one {len(typical.split())} words")

    unit = [sys.executable, "-c", "import numpy"]
    predict = [sys.executable, str(ROOT / "predict.py"), "--model", str(model)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
        handle.write("\n".join(" ".join(r.split()) for r in reviews) + "\n")
        handle.flush()
        numpy_one, one, one_ratio = paired(unit, predict + [typical], args.runs)
        numpy_many, many, many_ratio = paired(unit, predict + ["--file", handle.name, "--format", "json"], args.runs)
        if args.also:
            also = [sys.executable, str(ROOT / "predict.py"), "--model", str(exports.resolve_model(args.also, args.models_dir))]
            _, also_time, also_ratio = paired(predict + ["--file", handle.name, "--format", "json"],
                                              also + ["--file", handle.name, "--format", "json"], args.runs)
    batch_rate = len(reviews) / many
    print(f"import numpy: {numpy_one:.3f} s (medians of {args.runs} pairs)")
    print(f"predict.py, one review: {one:.3f} s = {one_ratio:.2f}x import numpy")
    print(f"predict.py, {len(reviews):,} reviews: {many:.2f} s = {many_ratio:.1f}x import numpy ({numpy_many:.3f} s that run), "
          f"{batch_rate:,.0f} reviews/s")
    if args.also:
        print(f"predict.py --model {args.also}, {len(reviews):,} reviews: {also_time:.2f} s = {also_ratio:.2f}x this model's time (paired)")

    branch, cores = branch_seconds(model, reviews), len(os.sched_getaffinity(0))
    print(f"floor: the recurrent branch alone, {len(reviews):,} reviews: {branch:.2f} s on one core = {branch / cores:.2f} s on {cores} "
          f"= {branch / cores / numpy_many:.1f}x import numpy (predict.py's batch ratio cannot be lower without changing the arithmetic)")

    ordered = [typical] + [r for r in reviews if r is not typical]
    for n in (1, 8, 64):
        print(f"engine in process, {n:>2} review(s): {engine_ms(model, ordered, n):7.2f} ms")

    proc, port = start_server(args.models_dir, "on", "--workers", str(args.server_workers))
    try:
        for clients in (1, 8, 32):
            result = load(port, reviews, clients, args.seconds)
            share = f", {result['reviews_per_s'] / batch_rate:.0%} of predict.py's batch reviews/s" if clients == 8 else ""
            print(f"server, {clients:>2} client(s): {result['reviews_per_s']:7.1f} reviews/s, p50 {result['p50_ms']:6.1f} ms, "
                  f"p99 {result['p99_ms']:6.1f} ms, errors {result['errors']}{share}")
        # The HTTP stack's own ceiling with these clients on these cores: no review, no model.
        bare = load(port, None, 8, args.seconds)
        print(f"server,  8 client(s), a bare readiness check: {bare['reviews_per_s']:7.1f} requests/s, p50 {bare['p50_ms']:6.1f} ms "
              f"(the HTTP stack and clients alone: {bare['reviews_per_s'] / batch_rate:.0%} of predict.py's batch reviews/s)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
