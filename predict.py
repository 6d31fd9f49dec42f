#!/usr/bin/env python3
"""Classify movie reviews as positive or negative with an exported model: `python predict.py --help` (installed with pip: `sentiment-predict`).

The program is sentiment/commands/predict.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.predict import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
