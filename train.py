#!/usr/bin/env python3
"""Train a sentiment classifier on IMDB reviews: `python train.py --help` (installed with pip: `sentiment-train`).

The program is sentiment/commands/train.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.train import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
