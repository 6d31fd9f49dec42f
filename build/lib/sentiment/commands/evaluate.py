"""Evaluate a finished run or an exported model on any supported dataset, or compare runs.

    python evaluate.py runs/lstm --data reviews.csv.gz            # report into runs/lstm/eval-<split>/
    python evaluate.py lstm --data aclImdb_v1.tar.gz --split all  # an exported model under saved_models/
    python evaluate.py wide_lstm --threshold precision=0.95       # the threshold meeting it on validation reviews
    python evaluate.py --compare runs/simple_rnn runs/lstm --out reports/comparison
    python evaluate.py --summarize reports/seed-42 reports/seed-43 reports/seed-44 --out reports/seeds

Reports hold metrics.json, report.md and PNG plots; comparisons add the TF-IDF baseline.
"""

import argparse
import sys
from pathlib import Path

from sentiment import cli

# What --compare and --summarize write into --out (a folder holding anything else is refused).
COMPARISON_FILES = frozenset({"comparison.json", "comparison.md", "comparison.png"})
SUMMARY_FILES = frozenset({"summary.json", "summary.md"})


def threshold_spec(text: str) -> str:
    """argparse type: a threshold setting (a number in [0, 1], f1, precision=X, recall=X)."""
    from sentiment.config import parse_threshold
    from sentiment.errors import ConfigError

    try:
        parse_threshold(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run dirs, SavedModel dirs or names under --models-dir (with --summarize: comparison dirs)")
    parser.add_argument("--data", help="dataset to evaluate on (default: the one the model was trained on)")
    parser.add_argument("--split", choices=("test", "validation", "train", "all"), help="which part of --data (default: test)")
    parser.add_argument("--out", help="output dir (default: <run>/eval-<split>, or reports/<name>-<split>)")
    cli.add_models_dir_flag(parser)
    parser.add_argument("--threshold", type=threshold_spec, metavar="SPEC",
                        help="label reviews at this P(positive) (default: the model's own), or at one chosen on the validation split: "
                             "f1 (best F1), precision=0.9 or recall=0.9")
    cli.add_trust_model_flag(parser)
    parser.add_argument("--compare", action="store_true", help="compare finished runs on their common test split, with the TF-IDF baseline")
    parser.add_argument("--summarize", action="store_true", help="mean ± std of each model over --compare outputs (one per seed)")
    args = parser.parse_args(argv)
    if args.compare and args.summarize:
        parser.error("--compare and --summarize are separate steps: compare each seed's runs, then summarize those comparisons")
    if (args.compare or args.summarize) and (args.data or args.split or args.threshold):
        flag = "--compare" if args.compare else "--summarize"
        parser.error(f"{flag} reads each run's own test-split report; --data, --split and --threshold do not apply to it")
    return args


def main(argv: list[str]) -> int:
    """Write one report per model, or one comparison."""
    args = parse_args(argv)
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment.rundir import check_output_dir

    if args.summarize:
        from sentiment.evaluation import comparison

        check_output_dir(Path(args.out or "reports/summary"), SUMMARY_FILES, "summary.json")
        out = comparison.summarize([Path(m) for m in args.models], Path(args.out or "reports/summary"))
        print(out.read_text(encoding="utf-8"))
        return 0
    if args.compare:
        from sentiment.evaluation import comparison

        check_output_dir(Path(args.out or "reports/comparison"), COMPARISON_FILES, "comparison.json")
        out = comparison.compare([Path(m) for m in args.models], Path(args.out or "reports/comparison"))
        print(out.read_text(encoding="utf-8"))
        return 0
    from sentiment.evaluation import report, scoring
    from sentiment.export import prediction

    split = args.split or "test"
    outs = scoring.default_out_dirs(args.models, split, args.out)
    for out in outs:  # all of them before any model loads
        check_output_dir(out, frozenset({"report.md", "metrics.json", *report.PLOTS.values()}), "metrics.json")
    for spec, out in zip(args.models, outs):
        scorer, config, name, own_threshold = prediction.load_scorer(spec, args.models_dir, args.trust_model)
        threshold = own_threshold if args.threshold is None else args.threshold
        print(f"report: {scoring.reevaluate(scorer, config, name, out, args.data, split, threshold)}")
    return 0


def run() -> int:
    """The installed command: main on sys.argv, errors as one line."""
    return cli.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
