#!/usr/bin/env bash
# Reproduce the shipped checkpoints (checkpoints/perspnet_lite.pt and the direct-regression baseline
# checkpoints/direct_lite.pt) from scratch on a 2-core CPU machine, then evaluate them on the test set.
# Safe to rerun: data generation is skipped when done, training resumes from runs/lite/last.pt.
#   bash scripts/train_lite.sh            (about 100 min on one 2-core machine: data 7, PerspNet 87, direct 3,
#                                          evaluation 4; about 2 h 5 min on a slower one: see the README)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
ITERATIONS=${ITERATIONS:-16000}
[ -f data/synth_train/index.csv ] || $PY -m pipelines.synth_cli samples --n 12000 --seed 1 --split train --out data/synth_train
[ -f data/synth_test/index.csv ] || $PY -m pipelines.synth_cli samples --n 1000 --seed 1000 --split test --out data/synth_test
$PY -m pipelines.train_cli --config lite --data data/synth_train --out runs/lite --iterations "$ITERATIONS" \
    --batch-size 16 --lr 1e-3 --seed 0 --workers 1 --threads 2
[ -f runs/direct/direct.pt ] || $PY -m pipelines.train_cli --direct --config lite --data data/synth_train \
    --out runs/direct --iterations 1500 --batch-size 16 --lr 1e-3 --seed 0 --workers 1 --threads 2
mkdir -p checkpoints
cp runs/lite/final.pt checkpoints/perspnet_lite.pt
cp runs/direct/direct.pt checkpoints/direct_lite.pt
$PY -m pipelines.eval_cli --data data/synth_test --checkpoint checkpoints/perspnet_lite.pt --baselines \
    --json runs/lite/eval.json
