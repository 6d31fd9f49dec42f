#!/usr/bin/env python3
"""The SimpleRNN vs LSTM measurements: `python study.py --help` (installed with pip: `sentiment-study`).

The program is sentiment/commands/study.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.study import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
