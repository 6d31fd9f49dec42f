#!/usr/bin/env bash
# Pretraining's learning curve (README: Pretraining): the recurrent-only recipe from random weights and from
# encoders pretrained on 25%, 50% and 100% of the text pretraining may read, all on seed 42's split.
#   usage: scripts/pretraining_curve.sh DATA      (a text,label CSV[.gz], an aclImdb folder/tarball, or imdb)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/pretraining_curve.sh DATA}
py=${PYTHON:-.venv/bin/python}
recipe=(--model lstm --bidirectional --readout max_mean --max-len 800 --vocab-size 40000 --embedding-dim 128 --epochs 3 --patience 1)

[ -f runs/curve-scratch/metrics.json ] || $py train.py "${recipe[@]}" --data "$data" --run-dir runs/curve-scratch
for fraction in 0.25 0.5 1.0; do
  [ -f "runs/curve-pre$fraction/metrics.json" ] ||
    $py train.py "${recipe[@]}" --pretrain-epochs 2 --pretrain-fraction "$fraction" --data "$data" --run-dir "runs/curve-pre$fraction"
done
$py evaluate.py --compare runs/curve-scratch runs/curve-pre{0.25,0.5,1.0} --out docs/comparison/lm-pretraining-curve
# The 100% encoder's word vectors alone, the recurrent layer fresh (the same encoder: reused, not retrained).
[ -f runs/curve-pre1.0-embedding/metrics.json ] ||
  $py train.py "${recipe[@]}" --pretrain-epochs 2 --pretrain-transfer embedding --data "$data" --run-dir runs/curve-pre1.0-embedding
$py evaluate.py --compare runs/curve-scratch runs/curve-pre1.0-embedding --out docs/comparison/lm-pretraining-embedding-only
# The language model on its own settings (--pretrain-learning-rate/-batch-size/-dropout defaults), 4 epochs, on all
# of the text. The runs above were made before it had them, on the classifier's settings: this code no longer
# reproduces them, and pretrains anew here (README: Pretraining, measured).
[ -f runs/curve-lm-pre1.0/metrics.json ] ||
  $py train.py "${recipe[@]}" --pretrain-epochs 4 --data "$data" --run-dir runs/curve-lm-pre1.0
$py evaluate.py --compare runs/curve-scratch runs/curve-lm-pre1.0 --out docs/comparison/lm-pretraining-own-settings
