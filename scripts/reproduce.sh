#!/usr/bin/env bash
# Reproduce the figures in README.md, docs/ and saved_models/ from one labelled IMDB file.
#   usage: scripts/reproduce.sh DATA      (DATA: a text,label CSV[.gz], aclImdb folder/tarball, or imdb)
# Each step is the documented command; run dirs go to runs/, reports to docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/reproduce.sh DATA}
py=${PYTHON:-.venv/bin/python}

for model in lstm simple_rnn gru bilstm lstm_chrono; do
  [ -f "runs/$model/metrics.json" ] || $py train.py --model "$model" --data "$data" --run-dir "runs/$model"
done
# The shipped models: wide and deep LSTM (the default, and its first recipe v1), the LSTM reading the last 800
# tokens, SimpleRNN; each on three seeds (a seed sets the split too), compared with the baseline per seed, then summarized.
for seed in 42 43 44; do
  suffix=$([ "$seed" = 42 ] || echo "-s$seed")
  [ -f "runs/wide_lstm_v2$suffix/metrics.json" ] ||
    $py train.py --config configs/wide_lstm_v2.json --data "$data" --seed "$seed" --run-dir "runs/wide_lstm_v2$suffix"
  $py evaluate.py --compare "runs/wide_lstm_v2$suffix" --out "docs/comparison/wide_lstm_v2/seed-$seed"
  # Today's preset (v3: v2 for one epoch), paired with the same model without its LSTM (--model wide) and with v2.
  [ -f "runs/wide_lstm_v3$suffix/metrics.json" ] || $py train.py --model wide_lstm --data "$data" --seed "$seed" --run-dir "runs/wide_lstm_v3$suffix"
  [ -f "runs/wide$suffix/metrics.json" ] || $py train.py --model wide --data "$data" --seed "$seed" --run-dir "runs/wide$suffix"
  $py evaluate.py --compare "runs/wide_lstm_v3$suffix" "runs/wide$suffix" "runs/wide_lstm_v2$suffix" --out "docs/comparison/ablation/seed-$seed"
  [ -f "runs/wide_lstm$suffix/metrics.json" ] || $py train.py --config configs/wide_lstm_v1.json --data "$data" --seed "$seed" --run-dir "runs/wide_lstm$suffix"
  [ -f "runs/lstm-len800$suffix/metrics.json" ] || $py train.py --config configs/lstm_len800.json --data "$data" --seed "$seed" --run-dir "runs/lstm-len800$suffix"
  [ -f "runs/simple_rnn$suffix/metrics.json" ] || $py train.py --model simple_rnn --data "$data" --seed "$seed" --run-dir "runs/simple_rnn$suffix"
  $py evaluate.py --compare "runs/wide_lstm$suffix" "runs/lstm-len800$suffix" "runs/simple_rnn$suffix" --out "docs/comparison/seed-$seed"
done
$py evaluate.py --summarize docs/comparison/seed-42 docs/comparison/seed-43 docs/comparison/seed-44 --out docs/comparison
$py evaluate.py --summarize docs/comparison/wide_lstm_v2/seed-{42,43,44} --out docs/comparison/wide_lstm_v2
$py evaluate.py --summarize docs/comparison/ablation/seed-{42,43,44} --out docs/comparison/ablation

$py evaluate.py --compare runs/simple_rnn runs/lstm runs/lstm_chrono runs/gru runs/bilstm --out docs/comparison/architectures
$py study.py --run simple_rnn=runs/simple_rnn --run lstm=runs/lstm --run lstm_chrono=runs/lstm_chrono --out docs/study
for model in wide_lstm_v2 wide_lstm lstm simple_rnn lstm-len800; do
  mkdir -p "docs/runs/$model"
  cp runs/$model/{report.md,metrics.json,config.json,history.csv,run.json} runs/$model/*.png "docs/runs/$model/"
done
[ -d saved_models/wide_lstm ] || { $py export_model.py runs/wide_lstm; $py export_model.py runs/wide_lstm_v2 --name wide_lstm; }
[ -d saved_models/lstm ] || $py export_model.py runs/lstm-len800
[ -d saved_models/simple_rnn ] || $py export_model.py runs/simple_rnn
