"""Evaluate a finished run or an exported model on any supported dataset, or compare runs.

    python evaluate.py runs/lstm --data reviews.csv.gz            # report into runs/lstm/eval-<split>/
    python evaluate.py lstm --data aclImdb_v1.tar.gz --split all  # an exported model under saved_models/
    python evaluate.py --compare runs/simple_rnn runs/lstm --out reports/comparison

Reports hold metrics.json, report.md and PNG plots; comparisons add the TF-IDF baseline.
"""

import argparse
import sys
from pathlib import Path

from sentiment import cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="run dirs, SavedModel dirs or names under --models-dir")
    parser.add_argument("--data", help="dataset to evaluate on (default: the one the model was trained on)")
    parser.add_argument("--split", default="test", choices=("test", "validation", "train", "all"), help="which part of --data (default: test)")
    parser.add_argument("--out", help="output dir (default: <run>/eval-<split>, or reports/<name>)")
    parser.add_argument("--models-dir", default="saved_models", help="where named models live (default: saved_models)")
    parser.add_argument("--compare", action="store_true", help="compare finished runs side by side, with the TF-IDF baseline")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    if args.compare:
        from sentiment import comparison

        out = comparison.compare([Path(m) for m in args.models], Path(args.out or "reports/comparison"))
        print(out.read_text(encoding="utf-8"))
        return 0
    from sentiment import reevaluation

    for spec in args.models:
        out = reevaluation.default_out_dir(spec, args.split, args.out, several=len(args.models) > 1)
        report = reevaluation.reevaluate(spec, out, args.data, args.split, args.models_dir)
        print(f"report: {report}")
    return 0


if __name__ == "__main__":
    cli.main_guard(main)
