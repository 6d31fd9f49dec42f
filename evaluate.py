#!/usr/bin/env python3
"""Re-evaluate a run or exported model; compare runs against the cheap anchors: `python evaluate.py --help` (installed with pip: `sentiment-evaluate`).

The program is sentiment/commands/evaluate.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.evaluate import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
