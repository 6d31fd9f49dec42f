"""Export a finished training run as a SavedModel in TensorFlow Serving's layout.

    python export_model.py runs/lstm                          # -> saved_models/lstm/<next version>/
    python export_model.py runs/lstm --name imdb --models-dir /srv/models
    python export_model.py --add-litert saved_models/lstm/1   # add the LiteRT twin to an exported version
    python export_model.py --add-checksums saved_models/lstm/1   # checksums for a version exported before them
    python export_model.py --calibrate saved_models/wide_lstm/2 --data reviews.csv.gz   # -> wide_lstm/3, calibrated

The version directory is written under a hidden temporary name and renamed into place,
so a server watching the model folder never sees a half-written version. Each export
also carries, in assets.extra/, a LiteRT copy of the classifier that predict.py runs
without TensorFlow; --add-litert adds it to versions exported before (their SavedModel
is left untouched, the new files are checked against it and renamed into place). Every
export ends with assets.extra/checksums.json (each file's SHA-256, verified by the loaders);
--add-checksums writes one into versions exported before checksums.
"""

import argparse
import sys

from sentiment import cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a finished run directory (holds model.keras, config.json, metrics.json)")
    parser.add_argument("--add-litert", nargs="+", metavar="VERSION_DIR", help="instead of exporting, add the LiteRT model to these exported versions")
    parser.add_argument("--calibrate", metavar="VERSION_DIR",
                        help="instead of exporting a run, re-export this version as the next one, calibrated on its validation reviews (with --data)")
    parser.add_argument("--add-checksums", nargs="+", metavar="VERSION_DIR",
                        help="instead of exporting, write assets.extra/checksums.json into these versions exported before checksums (after checking them)")
    parser.add_argument("--data", help="with --calibrate: the data it was trained on (default: the path in its config)")
    cli.add_models_dir_flag(parser)
    parser.add_argument("--name", help="model name under --models-dir (default: the run's model, e.g. lstm)")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.run_dir, args.add_litert, args.calibrate, args.add_checksums))) != 1:
        parser.error("give a run directory to export, or --add-litert VERSION_DIR..., --add-checksums VERSION_DIR... or --calibrate VERSION_DIR: one of them")
    if args.data and not args.calibrate:
        parser.error("--data goes with --calibrate")
    return args


def main(argv: list[str]) -> int:
    """Export the run and print where it went."""
    args = parse_args(argv)
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment.export import litert_twin, savedmodel

    if args.calibrate:
        print(f"exported to {savedmodel.recalibrate(args.calibrate, args.data)}")
    for version in args.add_litert or []:
        print(f"added {litert_twin.add_litert(version)}")
    for version in args.add_checksums or []:
        print(f"checksums in {savedmodel.add_checksums(version)}")
    if args.run_dir:
        print(f"exported to {savedmodel.export_run(args.run_dir, args.models_dir, args.name)}")
    return 0


def run() -> int:
    """The installed command: main on sys.argv, errors as one line."""
    return cli.run_main(main)


if __name__ == "__main__":
    sys.exit(run())
