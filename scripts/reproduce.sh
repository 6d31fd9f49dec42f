#!/usr/bin/env bash
# Rebuild a shipped model from the training command its export recorded (assets.extra/metadata.json), on your copy
# of the data, into rebuilt/ (the shipped saved_models/ are never touched), and print both test accuracies.
#   usage: scripts/reproduce.sh MODEL/VERSION LABELLED [UNLABELLED]
#   e.g.   scripts/reproduce.sh wide_lstm/4 imdb_train.csv.gz imdb_unsup.csv.gz
# LABELLED / UNLABELLED replace the recorded --data / --unlabelled paths (the files the model was trained on:
# saved_models/README.md names them); every other flag is the recorded one, the seeds included.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/reproduce.sh MODEL/VERSION LABELLED [UNLABELLED]"
model=${1:?$usage}
data=${2:?$usage}
unlabelled=${3:-}
py=${PYTHON:-.venv/bin/python}
metadata="saved_models/$model/assets.extra/metadata.json"
[[ -f $metadata ]] || { echo "error: no $metadata (give NAME/VERSION of a shipped model: ls saved_models/*/)" >&2; exit 2; }
run="runs/rebuilt-${model//\//-}"

# The recorded argv with the data paths swapped in and the run dir moved to $run, one argument per line.
mapfile -t argv < <($py - "$metadata" "$data" "$unlabelled" "$run" <<'PY'
import json, sys
metadata, data, unlabelled, run = sys.argv[1:]
command = json.load(open(metadata))["command"][1:]  # after train.py
swap = {"--data": data, "--unlabelled": unlabelled, "--run-dir": run}
out, skip = [], False
for i, arg in enumerate(command):
    if skip:
        skip = False
        continue
    if arg in swap:
        if arg == "--unlabelled" and not unlabelled:
            sys.exit(f"error: {metadata} was trained with --unlabelled: give UNLABELLED too")
        out += [arg, swap[arg]]
        skip = True
    else:
        out.append(arg)
if "--run-dir" not in command:
    out += ["--run-dir", run]
print("\n".join(out))
PY
)
(( ${#argv[@]} )) || exit 2  # the reader above said why
echo "+ $py train.py ${argv[*]}"
[[ -f $run/metrics.json ]] || $py train.py "${argv[@]}"
$py export_model.py "$run" --name "${model%%/*}" --models-dir rebuilt
$py - "$metadata" "$run/metrics.json" <<'PY'
import json, sys
shipped, rebuilt = (json.load(open(p)) for p in sys.argv[1:])
print(f"test accuracy: shipped {shipped['metrics']['accuracy']:.4f}, rebuilt {rebuilt['accuracy']:.4f}")
PY
