#!/usr/bin/env python3
"""Serve exported models over HTTP (TF Serving's REST API, V2, a page at /): `python serve.py --help` (installed with pip: `sentiment-serve`).

The program is sentiment/commands/serve.py; this file runs it from a checkout.
"""

import sys

from sentiment.commands.serve import main, run  # noqa: F401  (main: for tests that run it in process)

if __name__ == "__main__":
    sys.exit(run())
