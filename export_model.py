#!/usr/bin/env python3
"""Export a finished run in TensorFlow Serving's layout: `python export_model.py --help` (installed with pip: `sentiment-export`).

The program is sentiment/commands/export_model.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.export_model import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
