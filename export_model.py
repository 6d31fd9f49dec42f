"""Export a finished training run as a SavedModel in TensorFlow Serving's layout.

    python export_model.py runs/lstm                          # -> saved_models/lstm/<next version>/
    python export_model.py runs/lstm --name imdb --export-dir /srv/models

The version directory is written under a hidden temporary name and renamed into place,
so a server watching the model folder never sees a half-written version.
"""

import argparse
import sys

from sentiment import cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a finished run directory (holds model.keras, config.json, metrics.json)")
    parser.add_argument("--export-dir", default="saved_models", help="root of exported models (default: saved_models)")
    parser.add_argument("--name", help="model name under --export-dir (default: the run's model, e.g. lstm)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Export the run and print where it went."""
    args = parse_args(argv)
    cli.setup_logging()
    cli.start_tensorflow_quietly()
    from sentiment import export

    print(f"exported to {export.export_run(args.run_dir, args.export_dir, args.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
