"""predict.py as a user runs it, per engine, against the machine's limit and the cheap anchors.

    python benchmarks/predict_speed.py --model saved_models/wide_lstm/3 \
        --reviews-file reviews.txt --train-csv reviews.csv.gz      # real reviews, anchors fitted on the CSV

Prints, for the exported model (copied to a temporary directory, never modified):

* one review, whole process: wall time (median of --runs) and peak RSS, per engine;
* --reviews reviews (the first lines of --reviews-file, else generated IMDB-like ones),
  whole process (`predict.py --file ... --format json`), median of --runs: wall time,
  reviews/s and peak RSS, per engine (LiteRT with its default worker processes and with one);
* the model's FLOP per review on these reviews (counted from its config: recurrent matmuls
  and gates per token read, the wide branch's n-grams), the GFLOP/s that makes of the LiteRT
  run, and the machine's own float32 matmul GFLOP/s (NumPy, one thread and all), so the share
  of the limit reached is in the open;
* with --train-csv: TF-IDF 1-2-gram + logistic regression and (if the optional `fasttext`
  package is installed: pip install fasttext-wheel) fastText with bigrams, fitted on that CSV
  and timed predicting the same reviews in process (fit time shown apart).

Figures depend on the machine and on what else runs on it; run it on an idle machine.
"""

import argparse
import csv
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the TensorFlow-free tokenizer, to count tokens; predict.py itself runs in subprocesses
ONE_REVIEW = "This movie was wonderful, I loved every minute of it"


def user_environment() -> dict[str, str]:
    """This environment as Python runs by default: bytecode cached (a machine setting PYTHONDONTWRITEBYTECODE makes
    every run compile the project's modules again, ~26 ms of a one-review predict.py measured here)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_process(argv: list[str]) -> tuple[float, float]:
    """Run a command from the project root as a user would (``user_environment``); return (wall seconds, peak RSS in MB). Raise if it fails."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=user_environment())
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} failed: {err.read().decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def median_run(argv: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and largest peak RSS (MB) of ``runs`` runs of a command."""
    results = [run_process(argv) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def prepare_model(source: Path, workdir: Path) -> Path:
    """Copy the exported version into ``workdir`` and add its LiteRT twin there if it lacks one."""
    copy = workdir / "models" / source.parent.name / source.name
    shutil.copytree(source, copy)
    if not (copy / "assets.extra" / "litert.json").is_file():
        run_process([sys.executable, str(ROOT / "export_model.py"), "--add-litert", str(copy)])
    return copy


def generate_reviews(vocabulary: list[str], count: int, seed: int = 0) -> list[str]:
    """Return ``count`` IMDB-like reviews: words by frequency rank, log-normal lengths, sentences and <br /> tags."""
    rng = np.random.default_rng(seed)
    words = np.array(vocabulary)
    weights = 1.0 / (np.arange(len(words)) + 10.0)
    weights /= weights.sum()
    lengths = np.clip(rng.lognormal(np.log(175), 0.75, size=count), 5, 2000).astype(int)
    reviews = []
    for length in lengths:
        tokens = rng.choice(words, size=length, p=weights).tolist()
        for at in range(12, length, 15):
            tokens[at] += rng.choice([".", ",", "!", ". <br /><br />", "?"])
        reviews.append(" ".join(tokens).capitalize())
    return reviews


def read_reviews(args: argparse.Namespace, model: Path) -> list[str]:
    """The reviews to score: the first --reviews lines of --reviews-file, else generated ones."""
    if args.reviews_file:
        lines = Path(args.reviews_file).read_text(encoding="utf-8").split("\n")
        return [line for line in lines if line.strip()][: args.reviews]
    vocabulary = (model / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    return generate_reviews(vocabulary, args.reviews)


def flop_per_review(model: Path, reviews: list[str]) -> tuple[float, float]:
    """The model's mean FLOP per review on ``reviews``, and the mean tokens it reads; counted from its config.

    Per token read and per direction, a recurrent layer costs 2·(E + U)·G·U (its input and recurrent
    matmuls; G = 4 gates for LSTM, 3 for GRU, 1 for SimpleRNN) plus ~10·U element-wise; the wide branch
    2 per n-gram (TF-IDF weight and dot product); the readout and output layer are negligible.
    """
    from sentiment.data import fast_tokenizer

    config = json.loads((model / "assets.extra" / "metadata.json").read_text())["config"]
    gates = {"simple_rnn": 1, "gru": 3}.get(config["model"], 4)
    directions = 2 if config.get("bidirectional") or config["model"] == "bilstm" else 1
    e, u = config["embedding_dim"], config["units"]
    per_token = directions * (2 * (e + u) * gates * u + 10 * u)
    tokens = np.array([min(len(fast_tokenizer.tokenize(r)), config["max_len"]) for r in reviews], np.float64)
    ngrams = np.array([2 * len(fast_tokenizer.tokenize(r)) - 1 for r in reviews], np.float64) if config.get("ngram_vocab_size") else 0
    return float(np.mean(tokens * per_token + 2 * ngrams)), float(tokens.mean())


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 5) -> float:
    """The machine's float32 matmul GFLOP/s with NumPy's BLAS on ``threads`` threads (best of ``repeats``), in a fresh process."""
    code = (f"import time, numpy as np\na = np.random.rand({size}, {size}).astype(np.float32)\nb = a.copy()\na @ b\n"
            f"best = min((lambda s: (a @ b, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range({repeats}))\n"
            f"print(2 * {size} ** 3 / best / 1e9)")
    env = {**os.environ, **{k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    return float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def read_training_csv(path: str) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels of a text,label CSV (labels 0/1 or neg/pos), gzipped or not."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [int(str(r["label"]).lower() in ("1", "pos", "positive")) for r in rows]


def time_anchors(train_csv: str, reviews: list[str]) -> list[tuple[str, float, float]]:
    """Fit the cheap anchors on the CSV; return (name, fit seconds, reviews/s predicting ``reviews`` in process)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = read_training_csv(train_csv)
    results = []
    started = time.perf_counter()
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), LogisticRegression(C=4, max_iter=1000))
    tfidf.fit(texts, labels)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    tfidf.predict_proba(reviews)
    results.append(("TF-IDF 1-2-gram + LR", fitted, len(reviews) / (time.perf_counter() - started)))
    import fasttext_anchor

    if not fasttext_anchor.installed():
        print("fastText skipped: pip install fasttext-wheel to time it")
        return results
    started = time.perf_counter()
    model = fasttext_anchor.fit(texts, labels)
    fitted = time.perf_counter() - started
    started = time.perf_counter()
    fasttext_anchor.probabilities(model, reviews)
    results.append(("fastText, bigrams", fitted, len(reviews) / (time.perf_counter() - started)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "saved_models" / "wide_lstm"), help="an exported version dir, or a model dir (its newest version)")
    parser.add_argument("--reviews", type=int, default=4964, help="reviews for the batch run")
    parser.add_argument("--reviews-file", help="real reviews, one per line (default: generated IMDB-like ones)")
    parser.add_argument("--train-csv", help="a text,label CSV to fit the anchors on (TF-IDF + LR, fastText)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (the median is shown)")
    args = parser.parse_args()
    from sentiment.serving.exports import resolve_model

    source = resolve_model(args.model, ROOT / "saved_models")
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        workdir = Path(tmp)
        model = prepare_model(source, workdir)
        reviews = read_reviews(args, model)
        path = workdir / "reviews.txt"
        path.write_text("\n".join(" ".join(r.split()) for r in reviews) + "\n", encoding="utf-8")
        base = [sys.executable, str(ROOT / "predict.py"), "--model", str(model)]
        variants = [("litert", ["--engine", "litert"]), ("litert, 1 process", ["--engine", "litert", "--workers", "1"]),
                    ("savedmodel", ["--engine", "savedmodel"])]
        one = {name: median_run(base + flags + [ONE_REVIEW], args.runs) for name, flags in variants if name != "litert, 1 process"}
        many = {name: median_run(base + flags + ["--file", str(path), "--format", "json"], args.runs) for name, flags in variants}
        flop, tokens = flop_per_review(model, reviews)
    limit1, limit = matmul_gflops(1), matmul_gflops(len(os.sched_getaffinity(0)))
    print(f"predict.py on {source} (copy), {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}; median of {args.runs} runs")
    print(f"\none review, whole process:\n{'engine':<20} {'wall s':>7} {'peak RSS MB':>12}")
    for name, (seconds, rss) in one.items():
        print(f"{name:<20} {seconds:>7.2f} {rss:>12,.0f}")
    print(f"\n{len(reviews):,} {'real' if args.reviews_file else 'generated'} reviews ({tokens:.0f} tokens read on average), whole process:")
    print(f"{'engine':<20} {'wall s':>7} {'reviews/s':>10} {'peak RSS MB':>12} {'GFLOP/s':>8} {'of limit':>9}")
    for name, (seconds, rss) in many.items():
        gflops = flop * len(reviews) / seconds / 1e9
        print(f"{name:<20} {seconds:>7.2f} {len(reviews) / seconds:>10,.0f} {rss:>12,.0f} {gflops:>8.1f} {gflops / limit:>9.0%}")
    print(f"\nmodel: {flop / 1e6:.1f} MFLOP per review; machine: float32 matmul {limit1:.0f} GFLOP/s on 1 thread, "
          f"{limit:.0f} GFLOP/s on {len(os.sched_getaffinity(0))} (NumPy, 1024x1024)")
    if args.train_csv:
        print(f"\nanchors fitted on {args.train_csv}, predicting the same reviews in process:")
        print(f"{'anchor':<22} {'fit s':>7} {'reviews/s':>10}")
        for name, fitted, rate in time_anchors(args.train_csv, reviews):
            print(f"{name:<22} {fitted:>7.1f} {rate:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
