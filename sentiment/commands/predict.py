"""Classify movie reviews as positive or negative with an exported model.

    python predict.py "This movie was wonderful" "Worst film I have ever seen"
    python predict.py --file reviews.txt --format json      # one review per line
    python predict.py --file reviews.csv --text-column review --format csv   # ids carried through
    python predict.py --explain "Not good at all, though the cast tries"        # which words drove it
    cat reviews.txt | python predict.py - --model simple_rnn

--model takes a SavedModel directory or a name under saved_models/ (its latest
version); the model carries its own preprocessing, so no other settings are needed.

Output: json and csv give one row per input review (line or argument), with its
"input" and "line" number, and for a skipped review an "error" instead of a label; a
CSV --file's other columns (ids) are carried through. Reviews are read, classified and
printed 1,024 at a time, so a file of any length runs in flat memory.

--engine: savedmodel runs the SavedModel in TensorFlow (seconds and ~0.8 GB to start);
litert runs its LiteRT twin (assets.extra/, written by export_model.py) without
TensorFlow. Both give the same labels, probabilities within 1e-4. auto (the default) takes
LiteRT whenever the model has it and ai-edge-litert is installed (see benchmarks/predict_speed.py),
the SavedModel otherwise or when the LiteRT files cannot be loaded.
"""

import argparse
import logging
import sys
import time
from typing import NoReturn

from sentiment import cli
from sentiment.config import DEFAULT_MODEL
from sentiment.errors import ModelError

EXPLAIN_DEFAULT = 3  # reasons each way for a bare --explain


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reviews", nargs="*", help="reviews to classify; '-' reads one review per line from stdin")
    parser.add_argument("--file", help="a text file with one review per line (.gz too), or a CSV with a header (.csv, .csv.gz)")
    parser.add_argument("--text-column", help="the CSV --file's column of reviews (default: text); its other columns are carried to the output")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"SavedModel dir or name under --models-dir (default: {DEFAULT_MODEL}, the most accurate)")
    cli.add_models_dir_flag(parser)
    parser.add_argument("--threshold", type=probability, help="P(positive) at or above which a review is positive (default: the model's own, chosen at training)")
    parser.add_argument("--format", choices=("text", "json", "csv"), default="text",
                        help="output format; json (one object per line) and csv give one row per input review, skipped ones with an error")
    parser.add_argument("--engine", choices=("auto", "litert", "savedmodel"), default="auto",
                        help="litert (no TensorFlow, fast start), savedmodel (TensorFlow), or auto (default; see above)")
    parser.add_argument("--batch-size", type=cli.int_between(1, 1_000_000), default=1024, help="reviews read, classified and printed at a time (LiteRT shares them between its worker processes)")
    parser.add_argument("--workers", type=cli.int_between(1, 256), help="LiteRT: processes that share large inputs (default: one per CPU core)")
    parser.add_argument("--explain", type=cli.int_between(1, 100), default=0, metavar="K",
                        help=f"also give the K (default {EXPLAIN_DEFAULT}) words or phrases whose deletion moves each prediction most, each way, with signed weights")
    parser.add_argument("--verbose", action="store_true", help="report the model used and throughput on stderr")
    cli.add_trust_model_flag(parser)
    return parser.parse_intermixed_args(explain_count_given(argv))  # reviews may come before and after flags


def explain_count_given(argv: list[str]) -> list[str]:
    """Give a bare ``--explain`` its default count, so the review after it is not taken for K (``--explain "Great film"``)."""
    return [f"--explain={EXPLAIN_DEFAULT}" if a == "--explain" and (i + 1 == len(argv) or not argv[i + 1].isdigit()) else a
            for i, a in enumerate(argv)]


def open_predictor(path, engine: str, workers: int | None = None, trust_model: bool = False):
    """Load the model at ``path`` with the engine ``--engine`` asks for (auto: LiteRT when the model has it)."""
    from sentiment.serving import exports, litert_engine

    if exports.choose_engine(engine, path) == "litert":
        try:
            return litert_engine.LiteRTPredictor(path, workers, trust_model)
        except ModelError as e:
            if engine == "litert":
                raise
            logging.getLogger("predict").warning("%s; using the SavedModel instead", e)
    cli.start_tensorflow_quietly()
    from sentiment.export import prediction  # the SavedModel engine: TensorFlow loads here

    return prediction.Predictor(path, trust_model)


def main(argv: list[str]) -> int:
    """Classify the given reviews as they are read; print one row per review (exit 1 if none could be classified)."""
    args = parse_args(argv)
    cli.setup_logging(verbose=args.verbose)
    from sentiment.serving import exports  # no TensorFlow: it loads only if the SavedModel engine runs
    from sentiment.serving import reviews as reading

    reviews = reading.gather_reviews(args.reviews, args.file, sys.stdin.buffer, args.text_column)
    predictor = open_predictor(exports.resolve_model(args.model, args.models_dir), args.engine, args.workers, args.trust_model)
    streamed = bool(args.file) or "-" in args.reviews
    bar = cli.progress_bar(None, enabled=streamed and sys.stderr.isatty())
    started, classified, rows, header = time.perf_counter(), 0, 0, True
    threshold = predictor.threshold if args.threshold is None else args.threshold
    try:
        for chunk in reading.classify_chunks(predictor, reviews, threshold, args.batch_size, bar.update, explain=args.explain):
            for line in reading.format_results(chunk, args.format, header, explain=bool(args.explain)):
                print(line)
            header = False
            for result in chunk:
                if result.error and args.format == "text":
                    print(f"skipped {result.review.source}: {result.error}", file=sys.stderr)
            classified += sum(result.error is None for result in chunk)
            rows += len(chunk)
            sys.stdout.flush()  # rows appear as each chunk is done, also through a pipe
        seconds = time.perf_counter() - started
    finally:
        bar.close()
        predictor.close()
    if args.verbose:
        print(f"model {predictor.path} ({predictor.engine}): {classified} reviews in {seconds:.2f} s "
              f"({classified / max(seconds, 1e-9):.1f} reviews/s)", file=sys.stderr)
    if not rows:
        print(f"no reviews to classify: {describe_inputs(args)} held none", file=sys.stderr)
    return 0 if classified else 1


def describe_inputs(args: argparse.Namespace) -> str:
    """Name what the reviews were read from, for the message about an empty input: ``reviews.txt``, ``stdin``."""
    return " and ".join([*([args.file] if args.file else []), *(["stdin"] if "-" in args.reviews else [])]) or "the arguments"


def run() -> NoReturn:
    """The installed command: main on sys.argv, errors as one line; the process ends without its teardown."""
    cli.end_process(cli.run_main(main))


if __name__ == "__main__":
    sys.exit(run())
