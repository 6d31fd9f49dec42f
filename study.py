"""Measure the SimpleRNN → LSTM claim on finished runs: gradient flow, a long-range probe, length buckets.

    python study.py --run simple_rnn=runs/simple_rnn --run lstm=runs/lstm --out docs/study

Writes gradient_flow.png, long_range_probe.png, length_buckets.png, study.json and study.md.
"""

import argparse
import sys
from pathlib import Path

from sentiment import cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR", help="a finished run to study (repeat)")
    parser.add_argument("--out", default="docs/study", help="output directory (default: docs/study)")
    parser.add_argument("--gradient-steps", type=int, default=400, help="review length (tokens) for the gradient measurement")
    parser.add_argument("--probe-epochs", type=int, default=8, help="training epochs per probe model and distance")
    parser.add_argument("--distances", default="10,50,100,200,400", help="probe distractor counts, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe data and models")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the study on the named runs and print study.md."""
    args = parse_args(argv)
    cli.setup_logging()
    runs = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise cli.UsageError(f"--run takes NAME=RUN_DIR, got {item!r}")
        runs[name] = Path(path)
    try:
        distances = tuple(int(d) for d in args.distances.split(",") if d.strip())
    except ValueError:
        raise cli.UsageError(f"--distances takes comma-separated integers, got {args.distances!r}") from None
    cli.start_tensorflow_quietly()
    from sentiment import rnn_study, training

    # Seeding is the entry point's: every measurement (an untrained model, a probe) restarts from its own seed.
    study = rnn_study.run_study(runs, Path(args.out), args.gradient_steps, args.probe_epochs, distances, args.seed,
                                reseed=training.seed_everything)
    print(study.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
