"""Classify movie reviews as positive or negative with an exported model.

    python predict.py "This movie was wonderful" "Worst film I have ever seen"
    python predict.py --file reviews.txt --format json      # one review per line
    cat reviews.txt | python predict.py - --model simple_rnn

--model takes a SavedModel directory or a name under saved_models/ (its latest
version); the model carries its own preprocessing, so no other settings are needed.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from sentiment import cli  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reviews", nargs="*", help="reviews to classify; '-' reads one review per line from stdin")
    parser.add_argument("--file", help="a text file with one review per line")
    parser.add_argument("--model", default="lstm", help="SavedModel dir or name under --models-dir (default: lstm)")
    parser.add_argument("--models-dir", default=str(Path(__file__).resolve().parent / "saved_models"),
                        help="where named models live (default: this project's saved_models/)")
    parser.add_argument("--threshold", type=float, default=0.5, help="P(positive) at or above which a review is positive")
    parser.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format (json: one object per line)")
    parser.add_argument("--batch-size", type=int, default=128, help="reviews per inference batch")
    parser.add_argument("--verbose", action="store_true", help="report the model used and throughput on stderr")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    cli.setup_logging(verbose=args.verbose)
    cli.start_tensorflow_quietly()
    from sentiment import prediction

    reviews = prediction.gather_reviews(args.reviews, args.file, sys.stdin.buffer)
    predictor = prediction.Predictor(prediction.resolve_model(args.model, args.models_dir))
    bar = cli.progress_bar(len(reviews), enabled=len(reviews) >= 1000 and sys.stderr.isatty())
    started = time.perf_counter()
    predictions, rejected = prediction.classify(predictor, reviews, args.threshold, args.batch_size, bar.update)
    seconds = time.perf_counter() - started
    bar.close()
    for line in prediction.format_predictions(predictions, args.format):
        print(line)
    for review in rejected:
        print(f"skipped {review.source}: {review.problem}", file=sys.stderr)
    if args.verbose:
        print(f"model {predictor.path}: {len(predictions)} reviews in {seconds:.2f} s "
              f"({len(predictions) / max(seconds, 1e-9):.1f} reviews/s)", file=sys.stderr)
    return 0 if predictions else 1


if __name__ == "__main__":
    cli.main_guard(main)
