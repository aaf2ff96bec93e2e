#!/usr/bin/env bash
# Runs every benchmark of issue #6 one after another; JSON lines to stdout.
# Usage: bench/run_all.sh TF_PEER_PYTHON KERAS_PYTHON > bench/results/DATE.jsonl
# (peers: see bench/README.md for their virtual environments).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PEER_PY=$1
KERAS_PY=$2
PEER_SCRIPT=${PEER_SCRIPT:-../shared/bench/tf_estimator_peer.py}
peer=(--peer-python "$PEER_PY" --peer-script "$PEER_SCRIPT")
$PY bench/import_time.py
$PY bench/census.py --model linear "${peer[@]}" --handwritten
$PY bench/census.py --model dnn "${peer[@]}" --keras-python "$KERAS_PY" --handwritten
$PY bench/census.py --model linear --steps-per-loop 100 --handwritten
$PY bench/census.py --model dnn --steps-per-loop 100 --keras-python "$KERAS_PY" --handwritten
$PY bench/census.py --model combined
$PY bench/partial_loops.py --model linear
$PY bench/partial_loops.py --model dnn
$PY bench/checkpoint_io.py
$PY bench/scaling.py
$PY bench/serving.py
