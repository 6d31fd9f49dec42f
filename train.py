"""Train a sentiment classifier on IMDB reviews.

    python train.py --model lstm --data imdb
    python train.py --model simple_rnn --data reviews.csv.gz --epochs 5 --run-dir runs/rnn

Every run writes config.json, history.csv, TensorBoard logs, the best checkpoint,
the end-to-end model and metrics.json to its run directory. Re-running the same
command with the same --run-dir after an interruption resumes from the last
finished epoch.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from sentiment import cli  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; every Config field is a flag."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config_flags(parser)
    parser.add_argument("--run-dir", help="where to write this run (default: runs/<timestamp>-<model>); reuse it to resume")
    parser.add_argument("--export", action="store_true", help="also export a SavedModel to saved_models/<model>/<version>/")
    parser.add_argument("--export-dir", default="saved_models", help="root of exported models (default: saved_models)")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment import experiment
    from sentiment.config import make_config

    overrides = cli.config_overrides(args)
    config = make_config(overrides.pop("model", "lstm"), **overrides)
    verbose = 1 if sys.stdout.isatty() else 2  # progress bar for people, one line per epoch for logs
    run_dir = experiment.run(config, args.run_dir, verbose=verbose, argv=sys.argv)
    print(f"run saved to {run_dir}")
    if args.export:
        from sentiment import export

        print(f"exported to {export.export_run(run_dir, args.export_dir)}")
    return 0


if __name__ == "__main__":
    cli.main_guard(main)
