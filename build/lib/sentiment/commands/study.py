"""Measure the SimpleRNN → LSTM claim: gradient flow, synthetic probes over seeds, real reviews by length.

    python study.py --run simple_rnn=runs/simple_rnn --run lstm=runs/lstm --run lstm_chrono=runs/lstm_chrono

Writes gradient_flow.png, probes.png, recipes.png, length_buckets.png, study.json and study.md
into --out. The first --run is the reference of the paired length-bucket comparison.
--redraw redraws the figures and study.md from the study.json already in --out.
"""

import argparse
import sys
from pathlib import Path

from sentiment import cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR", help="a finished run to study (repeat)")
    parser.add_argument("--out", default="docs/study", help="output directory (default: docs/study)")
    parser.add_argument("--gradient-steps", type=int, default=400, help="review length (tokens) for the gradient measurement")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per probe cell, 0..N-1 (default: 3)")
    parser.add_argument("--tasks", default="first_token,interference,adding",
                        help="probe tasks, comma-separated; 'none' studies the runs' real reviews alone (gradient flow, length buckets)")
    parser.add_argument("--max-length", type=int, default=400, help="skip probe lengths above this (quick runs; each task keeps its shortest)")
    parser.add_argument("--workers", type=int, default=2, help="processes training probe cells side by side (default: 2)")
    parser.add_argument("--redraw", action="store_true", help="only redraw figures and study.md from --out/study.json")
    return parser.parse_args(argv)


def parse_runs(items: list[str]) -> dict[str, Path]:
    """Turn NAME=RUN_DIR items into an ordered dict, or raise UsageError."""
    runs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise cli.UsageError(f"--run takes NAME=RUN_DIR, got {item!r}")
        runs[name] = Path(path)
    return runs


def main(argv: list[str]) -> int:
    """Run the study on the named runs (or redraw it) and print study.md."""
    args = parse_args(argv)
    real_only = args.tasks == "none"
    runs, tasks = parse_runs(args.run), () if real_only else tuple(t for t in args.tasks.split(",") if t.strip())
    if not runs and not args.redraw:
        raise cli.UsageError("give at least one --run NAME=RUN_DIR (or --redraw)")
    if min(args.seeds, args.workers) < 1 or min(args.gradient_steps, args.max_length) < 2:
        raise cli.UsageError("--seeds and --workers must be at least 1, --gradient-steps and --max-length at least 2")
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment.study import probes, rnn_study
    from sentiment.training import fitting

    unknown = sorted(set(tasks) - set(probes.TASKS))
    if unknown or not (tasks or real_only):
        raise cli.UsageError(f"unknown probe task(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(probes.TASKS)} (or none)")
    if args.redraw:
        study = rnn_study.render_saved_study(Path(args.out))
    else:
        settings = rnn_study.StudySettings(args.gradient_steps, tuple(range(args.seeds)), tasks, args.max_length, workers=args.workers)
        # Seeding is the entry point's: every measurement (an untrained model, a probe cell) restarts from its own seed.
        study = rnn_study.run_study(runs, Path(args.out), settings, reseed=fitting.seed_everything)
    print(study.read_text(encoding="utf-8"))
    return 0


def run() -> int:
    """The installed command: main on sys.argv, errors as one line."""
    return cli.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
