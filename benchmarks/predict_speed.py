"""predict.py per engine, as whole processes: one-review cold start, and reviews/s on a large file.

    python benchmarks/predict_speed.py [--model saved_models/lstm/1] [--reviews 10000] [--runs 5]

The model is copied to a temporary directory and, if it has no LiteRT twin yet, given one
there (export_model.py --add-litert); the original is never modified. Then predict.py runs
in fresh processes for each engine:

* cold start: one review, wall time (median of --runs) and peak RSS;
* input sizes 1, 100, 1000 and --reviews generated reviews (words of the model's own
  vocabulary drawn by frequency rank, IMDB-like lengths: median ~175 words, some markup):
  wall time per size, and reviews/s both for the whole process and for classification
  alone (predict.py --verbose), to show where, if anywhere, the engines cross.

Figures depend on the machine and on what else runs on it; run it on an idle machine.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("litert", "savedmodel")
ONE_REVIEW = "This movie was wonderful, I loved every minute of it"


def run_process(argv: list[str], stdin_path: Path | None = None) -> tuple[float, float, str]:
    """Run a command from the project root; return (wall seconds, peak RSS in MB, stderr). Raise if it fails."""
    with tempfile.TemporaryFile() as err, open(stdin_path or os.devnull, "rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def predict_command(model: Path, engine: str, *args: str) -> list[str]:
    """The predict.py command line for one engine."""
    return [sys.executable, str(ROOT / "predict.py"), "--model", str(model), "--engine", engine, *args]


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


def read_vocabulary(model: Path) -> list[str]:
    """The model's vocabulary, from its LiteRT files."""
    return (model / "assets.extra" / "vocabulary.txt").read_text(encoding="utf-8").split("\n")


def classification_rate(stderr: str) -> float:
    """Reviews/s of the classification alone, from predict.py --verbose."""
    match = re.search(r"\(([\d.]+) reviews/s\)", stderr)
    return float(match.group(1)) if match else float("nan")


def faster_engines(times: dict[str, list[float]]) -> list[str]:
    """Return the faster engine at each measured size."""
    return ["litert" if a < b else "savedmodel" for a, b in zip(times["litert"], times["savedmodel"])]


def crossing(sizes: list[int], times: dict[str, list[float]]) -> tuple[float, int] | None:
    """Return where the wall times of the two engines first cross (linear between sizes) and the size index after it."""
    lite, saved, faster = np.array(times["litert"]), np.array(times["savedmodel"]), faster_engines(times)
    if len(set(faster)) == 1:
        return None
    i = next(k for k in range(1, len(sizes)) if faster[k] != faster[k - 1])
    gap0, gap1 = saved[i - 1] - lite[i - 1], saved[i] - lite[i]
    return sizes[i - 1] + (sizes[i] - sizes[i - 1]) * gap0 / (gap0 - gap1), i


def crossover(sizes: list[int], times: dict[str, list[float]]) -> str:
    """Describe where the measured wall times of the two engines cross."""
    faster, found = faster_engines(times), crossing(sizes, times)
    if found is None:
        return f"no crossover between {sizes[0]} and {sizes[-1]} reviews: {faster[0]} is faster at every size"
    at, i = found
    return f"crossover near {at:,.0f} reviews: {faster[i - 1]} below, {faster[i]} above"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "saved_models" / "lstm" / "1"), help="an exported version dir (copied, never modified)")
    parser.add_argument("--reviews", type=int, default=10_000, help="generated reviews for the throughput run")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per engine (the median is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="predict-speed-") as tmp:
        workdir = Path(tmp)
        model = prepare_model(Path(args.model).resolve(), workdir)
        cold = {}
        for engine in ENGINES:
            runs = [run_process(predict_command(model, engine, ONE_REVIEW)) for _ in range(args.runs)]
            cold[engine] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
        reviews = generate_reviews(read_vocabulary(model), args.reviews)
        sizes = sorted({1, 100, 1000, args.reviews})
        wall: dict[str, list[float]] = {e: [] for e in ENGINES}
        rates: dict[str, tuple[float, float, float]] = {}
        for size in sizes:
            path = workdir / f"reviews-{size}.txt"
            path.write_text("\n".join(reviews[:size]) + "\n", encoding="utf-8")
            for engine in ENGINES:
                seconds, rss, err = run_process(predict_command(model, engine, "--file", str(path), "--format", "csv", "--verbose"))
                wall[engine].append(seconds)
                if size == args.reviews:
                    rates[engine] = (size / seconds, classification_rate(err), rss)
    words = np.mean([len(r.split()) for r in reviews])
    print(f"predict.py on {Path(args.model)} (copy), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"\none review, whole process (median of {args.runs}):")
    print(f"{'engine':<11} {'wall s':>7} {'peak RSS MB':>12}")
    for engine in ENGINES:
        print(f"{engine:<11} {cold[engine][0]:>7.2f} {cold[engine][1]:>12,.0f}")
    print(f"\n{args.reviews:,} generated reviews ({words:.0f} words on average), one process each:")
    print(f"{'engine':<11} {'wall s':>7} {'reviews/s (process)':>20} {'reviews/s (classify)':>21} {'peak RSS MB':>12}")
    for engine in ENGINES:
        rate, inner, rss = rates[engine]
        print(f"{engine:<11} {wall[engine][-1]:>7.1f} {rate:>20,.0f} {inner:>21,.0f} {rss:>12,.0f}")
    print("\nwall seconds by input size:")
    print(f"{'reviews':>8} " + " ".join(f"{e:>11}" for e in ENGINES))
    for i, size in enumerate(sizes):
        print(f"{size:>8,} " + " ".join(f"{wall[e][i]:>11.2f}" for e in ENGINES))
    print(crossover(sizes, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
