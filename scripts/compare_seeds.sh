#!/usr/bin/env bash
# Compare the runs of scripts/seed_runs.sh per training seed on the seed-42 split, then summarize over seeds.
# The first run listed is the default: every other row is paired with it (the ablation) and with both anchors.
#   usage: [OUT=DIR] scripts/compare_seeds.sh [RUN_NAME...]   (default: wide_lstm_v5 wide wide_lstm_v3 wide_lstm_v4 lstm_v2 lstm_v2_random simple_rnn_v2)
# OUT (default docs/comparison/default-ablation) gets seed-42, seed-43, seed-44 and summary.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${OUT:-docs/comparison/default-ablation}
names=${*:-wide_lstm_v5 wide wide_lstm_v3 wide_lstm_v4 lstm_v2 lstm_v2_random simple_rnn_v2}
for seed in 42 43 44; do
  runs=()
  for name in $names; do [ -f "runs/$name-s$seed/metrics.json" ] && runs+=("runs/$name-s$seed"); done
  (( ${#runs[@]} )) && $py evaluate.py --compare "${runs[@]}" --out "$out/seed-$seed"
done
$py evaluate.py --summarize "$out"/seed-* --out "$out/summary"
