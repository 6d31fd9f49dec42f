"""Classify movie reviews as positive or negative with an exported model.

    python predict.py "This movie was wonderful" "Worst film I have ever seen"
    python predict.py --file reviews.txt --format json      # one review per line
    cat reviews.txt | python predict.py - --model simple_rnn

--model takes a SavedModel directory or a name under saved_models/ (its latest
version); the model carries its own preprocessing, so no other settings are needed.

--engine: savedmodel runs the SavedModel in TensorFlow (about 4.5 s and 0.8 GB to start);
litert runs its LiteRT twin (assets.extra/classifier.tflite, written by export_model.py)
without TensorFlow: about 0.2 s and 90 MB. Both give the same labels, probabilities within
1e-4. auto (the default) takes LiteRT when the model has it, up to the input size where the
SavedModel was measured faster (auto_max_reviews in its litert.json, written by
benchmarks/predict_speed.py --record; wide_lstm/2: 8,422 reviews), and the SavedModel beyond
or when the model has no LiteRT files, ai-edge-litert is not installed, or the files cannot be loaded.
"""

import argparse
import logging
import sys
import time

from sentiment import cli
from sentiment.errors import ModelError


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
    parser.add_argument("--model", default="wide_lstm", help="SavedModel dir or name under --models-dir (default: wide_lstm, the most accurate)")
    parser.add_argument("--models-dir", default=str(cli.DEFAULT_MODELS_DIR), help="where named models live (default: this project's saved_models/)")
    parser.add_argument("--threshold", type=probability, default=0.5, help="P(positive) at or above which a review is positive")
    parser.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format (json: one object per line)")
    parser.add_argument("--engine", choices=("auto", "litert", "savedmodel"), default="auto",
                        help="litert (no TensorFlow, fast start), savedmodel (TensorFlow), or auto (default; see above)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="reviews per inference batch (LiteRT runs them one by one)")
    parser.add_argument("--verbose", action="store_true", help="report the model used and throughput on stderr")
    return parser.parse_args(argv)


def open_predictor(path, engine: str, n_reviews: int):
    """Load the model at ``path`` with the engine ``--engine`` asks for (auto: see the module help)."""
    from sentiment.serving import exports, litert_engine

    chosen = exports.choose_engine(engine, path, n_reviews)
    if chosen == "litert":
        try:
            return litert_engine.LiteRTPredictor(path)
        except ModelError as e:
            if engine == "litert":
                raise
            logging.getLogger("predict").warning("%s; using the SavedModel instead", e)
    cli.start_tensorflow_quietly()
    from sentiment import prediction  # the SavedModel engine: TensorFlow loads here

    return prediction.Predictor(path)


def main(argv: list[str]) -> int:
    """Classify the given reviews and print one line per review (exit 1 if none could be classified)."""
    args = parse_args(argv)
    cli.setup_logging(verbose=args.verbose)
    from sentiment.serving import exports, reviews as reading  # no TensorFlow: it loads only if the SavedModel engine runs

    reviews = reading.gather_reviews(args.reviews, args.file, sys.stdin.buffer)
    predictor = open_predictor(exports.resolve_model(args.model, args.models_dir), args.engine, len(reviews))
    bar = cli.progress_bar(len(reviews), enabled=len(reviews) >= 1000 and sys.stderr.isatty())
    started = time.perf_counter()
    predictions, rejected = reading.classify(predictor, reviews, args.threshold, args.batch_size, bar.update)
    seconds = time.perf_counter() - started
    bar.close()
    for line in reading.format_predictions(predictions, args.format):
        print(line)
    for review in rejected:
        print(f"skipped {review.source}: {review.problem}", file=sys.stderr)
    if args.verbose:
        print(f"model {predictor.path} ({predictor.engine}): {len(predictions)} reviews in {seconds:.2f} s "
              f"({len(predictions) / max(seconds, 1e-9):.1f} reviews/s)", file=sys.stderr)
    return 0 if predictions else 1


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
