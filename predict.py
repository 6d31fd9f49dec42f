"""Classify movie reviews as positive or negative with an exported model.

    python predict.py "This movie was wonderful" "Worst film I have ever seen"
    python predict.py --file reviews.txt --format json      # one review per line
    cat reviews.txt | python predict.py - --model simple_rnn

--model takes a SavedModel directory or a name under saved_models/ (its latest
version); the model carries its own preprocessing, so no other settings are needed.
"""

import argparse
import sys
import time

from sentiment import cli


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not at least 1")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reviews", nargs="*", help="reviews to classify; '-' reads one review per line from stdin")
    parser.add_argument("--file", help="a text file with one review per line")
    parser.add_argument("--model", default="lstm", help="SavedModel dir or name under --models-dir (default: lstm)")
    parser.add_argument("--models-dir", default=str(cli.DEFAULT_MODELS_DIR), help="where named models live (default: this project's saved_models/)")
    parser.add_argument("--threshold", type=probability, default=0.5, help="P(positive) at or above which a review is positive")
    parser.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format (json: one object per line)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="reviews per inference batch")
    parser.add_argument("--verbose", action="store_true", help="report the model used and throughput on stderr")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Classify the given reviews and print one line per review (exit 1 if none could be classified)."""
    args = parse_args(argv)
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
    sys.exit(cli.run_main(main))
