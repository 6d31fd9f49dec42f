#!/usr/bin/env bash
# Named training recipes over three training seeds on the seed-42 split of the labelled CSV, word vectors
# learned once from its training reviews + the unlabelled file and shared by every run.
#   usage: scripts/seed_runs.sh LABELLED_CSV UNLABELLED_CSV [STEP...]   (steps: v5 v6 stacked wide wide_teacher lstm lstm_v3 lstm_v4 lstm_v5 random simple_rnn simple_rnn_v3 simple_rnn_v4 joint)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/seed_runs.sh LABELLED_CSV UNLABELLED_CSV [STEP...]}
unlabelled=${2:?usage: scripts/seed_runs.sh LABELLED_CSV UNLABELLED_CSV [STEP...]}
shift 2
steps=${*:-v5 stacked wide lstm simple_rnn joint}
py=${PYTHON:-.venv/bin/python}

train() {  # train NAME SEED ARGS...: one run, skipped when finished
  local name=$1 seed=$2; shift 2
  [ -f "runs/$name-s$seed/metrics.json" ] ||
    $py train.py "$@" --data "$data" --unlabelled "$unlabelled" --seed "$seed" --split-seed 42 --run-dir "runs/$name-s$seed"
}

for seed in 42 43 44; do  # a whole seed first: its figures are complete before the next seed starts
  for step in $steps; do
    case $step in
      v5) train wide_lstm_v5 "$seed" --config configs/wide_lstm_v5.json ;;  # the default (its preset)
      v6) train wide_lstm_v6 "$seed" --config configs/wide_lstm_v6.json ;;  # v5 also trained on the unlabelled reviews, labelled by NBSVM-bi
      stacked) train wide_lstm_v4 "$seed" --config configs/wide_lstm_v4.json ;;  # v5 reading max and mean of all states: slower
      wide) train wide "$seed" --model wide ;;
      wide_teacher) train wide_teacher "$seed" --model wide --teacher nbsvm_bi ;;  # v6 without its recurrent part
      lstm) train lstm_v2 "$seed" --config configs/lstm_v2.json ;;
      lstm_v3) train lstm_v3 "$seed" --config configs/lstm_v3.json ;;  # lstm v2 with a 40k vocabulary of 64-d vectors (same size)
      lstm_v4) train lstm_v4 "$seed" --config configs/lstm_v4.json ;;  # lstm v2 with a 40k vocabulary (its float32 export is over 25 MB)
      lstm_v5) train lstm_v5 "$seed" --config configs/lstm_v5.json ;;  # lstm v2 also trained on the unlabelled reviews, labelled by NBSVM-bi
      random) train lstm_v2_random "$seed" --config configs/lstm_v2.json --word-vector-epochs 0 ;;  # the control: random vectors
      simple_rnn) train simple_rnn_v2 "$seed" --config configs/simple_rnn_v2.json ;;
      simple_rnn_v3) train simple_rnn_v3 "$seed" --config configs/simple_rnn_v3.json ;;  # v2 trained longer: twice the step, slower decay, up to 8 epochs
      simple_rnn_v4) train simple_rnn_v4 "$seed" --config configs/simple_rnn_v4.json ;;  # v3 with lstm v5's teacher, up to 3 epochs
      joint) train wide_lstm_v3 "$seed" --config configs/wide_lstm_v3.json ;;  # the joint recipe of the earlier default
    esac
  done
done
