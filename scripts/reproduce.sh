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
# The shipped LSTM (lowest validation loss of the LSTM runs tried): keeps the last 800 tokens.
[ -f runs/lstm-len800/metrics.json ] || $py train.py --config configs/lstm_len800.json --data "$data" --run-dir runs/lstm-len800

$py evaluate.py --compare runs/simple_rnn runs/lstm runs/lstm_chrono runs/gru runs/bilstm --out docs/comparison
$py study.py --run simple_rnn=runs/simple_rnn --run lstm=runs/lstm --run lstm_chrono=runs/lstm_chrono --out docs/study
for model in lstm simple_rnn lstm-len800; do
  mkdir -p "docs/runs/$model"
  cp runs/$model/{report.md,metrics.json,config.json,history.csv,run.json} runs/$model/*.png "docs/runs/$model/"
done
[ -d saved_models/lstm ] || $py export_model.py runs/lstm-len800
[ -d saved_models/simple_rnn ] || $py export_model.py runs/simple_rnn
