"""Peak memory and speed of one training epoch as the corpus grows: 20k, 200k and 1M generated reviews.

    python benchmarks/streaming_memory.py [--sizes 20000,200000,1000000] [--work DIR]

Writes each corpus as gzipped CSV shards (100k reviews each), then runs ``train.py
--stream on --epochs 1`` on it in a fresh process, plus the 20k corpus in memory
(``--stream off``) for comparison. Prints one row per run: peak RSS of the process,
training reviews/s (the epoch's reviews over its fit time) and wall time. The model
is small (LSTM 16 on the last 64 tokens, batch 256) so the figures show the input pipeline; the
vocabulary is learned from, and the report scores, at most 20,000 reviews (--stream-sample).
"""

import argparse
import csv
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARD = 100_000  # reviews per CSV shard
TRAIN_FLAGS = ["--model", "lstm", "--epochs", "1", "--units", "16", "--embedding-dim", "16", "--max-len", "64",
               "--batch-size", "256", "--stream-sample", "20000"]
POSITIVE = ["great", "wonderful", "excellent", "loved", "superb", "brilliant", "moving", "funny"]
NEGATIVE = ["awful", "terrible", "boring", "worst", "dull", "waste", "poor", "silly"]


def write_corpus(folder: Path, size: int, seed: int = 0) -> str:
    """Write ``size`` generated reviews (filler words plus sentiment words) as gzipped CSV shards; return their glob."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    filler = np.array([f"w{i}" for i in range(5000)])
    for start in range(0, size, SHARD):
        n = min(SHARD, size - start)
        labels = rng.integers(0, 2, n)
        lengths = rng.integers(20, 160, n)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["text", "label"])
        for label, length in zip(labels, lengths):
            words = list(filler[rng.integers(0, len(filler), length)])
            for position in rng.integers(0, length, 3):  # three sentiment words decide the label
                words[int(position)] = str(rng.choice(POSITIVE if label else NEGATIVE))
            writer.writerow([" ".join(words), int(label)])
        (folder / f"part-{start // SHARD:04d}.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode(), compresslevel=1))
    return str(folder / "part-*.csv.gz")


def train_reviews(data: str) -> int:
    """Count the training part of a streamed source (the same hash split train.py uses)."""
    sys.path.insert(0, str(ROOT))
    from sentiment.config import make_config
    from sentiment.data import streaming

    train, _, _ = streaming.load_streams(make_config("lstm", data=data))
    return int(train.records().reduce(0, lambda count, *_: count + 1))


def run_training(data: str, stream: str, run_dir: Path) -> dict:
    """Run train.py for one epoch in a fresh process; return its peak RSS, fit time and wall time."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--data", data, "--stream", stream, "--run-dir", str(run_dir),
                             *TRAIN_FLAGS], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read()
    if status:
        raise SystemExit(f"train.py failed on {data}:\n{err[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "train_seconds": metrics["training"]["train_seconds"],
            "reviews_per_second": metrics["training"]["reviews_per_second"],  # counted in memory, None when streamed
            "wall_seconds": time.perf_counter() - started, "accuracy": metrics["accuracy"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,200000,1000000", help="corpus sizes (reviews), comma-separated")
    parser.add_argument("--work", help="folder for the corpora and runs (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        rows = []
        for size in sizes:
            data = write_corpus(work / f"corpus-{size}", size)
            n_train = train_reviews(data)
            modes = ["off", "on"] if size == sizes[0] else ["on"]  # the first corpus also in memory, for comparison
            for stream in modes:
                source = data if stream == "on" else data.replace("part-*", "part-0000")  # in memory: one file
                result = run_training(source, stream, work / f"run-{size}-{stream}")
                rows.append({"reviews": size, "stream": stream, "train_reviews": n_train, **result})
                print(f"{size} reviews, --stream {stream}: {result}", file=sys.stderr)
    base = next(r["peak_rss_mb"] for r in rows if r["stream"] == "on")
    print("| corpus (reviews) | input | peak RSS (MB) | vs smallest streamed | training reviews/s | wall time (s) | test accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mode = "streamed" if r["stream"] == "on" else "in memory"
        print(f"| {r['reviews']:,} | {mode} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / base:.2f}× | "
              f"{r['reviews_per_second'] or r['train_reviews'] / r['train_seconds']:,.0f} | {r['wall_seconds']:.0f} | {r['accuracy']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
