#!/usr/bin/env bash
# Compare issue 29's runs (scripts/issue29_runs.sh) per training seed on the seed-42 split, then summarize over seeds.
# The first run listed is the default: every other row is paired with it (the ablation) and with both anchors.
#   usage: scripts/issue29_compare.sh [RUN_NAME...]   (default: wide_lstm_v5 wide wide_lstm_v3 wide_lstm_v4 lstm_v2 lstm_v2_random simple_rnn_v2)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
names=${*:-wide_lstm_v5 wide wide_lstm_v3 wide_lstm_v4 lstm_v2 lstm_v2_random simple_rnn_v2}
for seed in 42 43 44; do
  runs=()
  for name in $names; do [ -f "runs/$name-s$seed/metrics.json" ] && runs+=("runs/$name-s$seed"); done
  (( ${#runs[@]} )) && $py evaluate.py --compare "${runs[@]}" --out "docs/comparison/unlabelled/seed-$seed"
done
$py evaluate.py --summarize docs/comparison/unlabelled/seed-* --out docs/comparison/unlabelled/summary
