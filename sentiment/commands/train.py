"""Train a sentiment classifier on IMDB reviews.

    python train.py --data imdb                  # the default model, wide_lstm (its quick preset; predict.py's wide_lstm/6: --config configs/wide_lstm_v8.json)
    python train.py --model lstm --data imdb
    python train.py --model simple_rnn --data reviews.csv.gz --epochs 5 --run-dir runs/rnn
    python train.py --config configs/lstm_len800.json --data reviews.csv.gz --export
    python train.py --data 'shards/part-*.csv.gz' --distribute mirrored   # streamed, all GPUs
    TF_CONFIG='{...}' python train.py --distribute multi_worker --run-dir /shared/run ...   # on every worker

Every run writes config.json, history.csv, TensorBoard logs, the best checkpoint,
the end-to-end model and metrics.json to its run directory. Re-running the same
command with the same --run-dir after an interruption resumes from the last
finished epoch. Settings come from the model's preset, then --config, then flags.
"""

import argparse
import sys

from sentiment import cli


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that are not Config fields."""
    parser.add_argument("--run-dir", help="where to write this run (default: runs/<timestamp>-<model>); reuse it to resume")
    parser.add_argument("--export", action="store_true", help="also export a SavedModel to <models-dir>/<model>/<version>/ (default exports/: yours, not the shipped saved_models/)")
    cli.add_models_dir_flag(parser, exporting=True)


def main(argv: list[str]) -> int:
    """Parse flags into a Config, train and evaluate, optionally export."""
    args, config = cli.parse_training_args(argv, add_arguments, __doc__)
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment import models
    from sentiment.training import experiment, fitting

    fitting.seed_everything(config.seed, deterministic_ops=not models.use_xla(config))
    verbose = 1 if sys.stdout.isatty() else 2  # progress bar for people, one line per epoch for logs
    run_dir = experiment.run(config, args.run_dir, verbose=verbose, argv=sys.argv)
    print(f"run saved to {run_dir}")
    exported = None
    if args.export:
        from sentiment.export import savedmodel

        exported = savedmodel.export_run(run_dir, args.models_dir)
        print(f"exported to {exported}")
    print(cli.next_steps(run_dir, config.model, exported))
    return 0


def run() -> int:
    """The installed command: main on sys.argv, errors as one line."""
    return cli.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
