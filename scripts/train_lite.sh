#!/usr/bin/env bash
# Reproduce the shipped checkpoints (checkpoints/perspnet_lite.pt and the direct-regression baseline
# checkpoints/direct_lite.pt) from scratch on a CPU machine, then evaluate them on the test set.
# Safe to rerun: data generation is skipped when done, training resumes from runs/lite/last.pt.
#   bash scripts/train_lite.sh            (hours on a 2-core CPU; timings: docs/benchmarks.md)
# PerspNet trains under bfloat16 autocast where the CPU runs it natively (AVX512-BF16, AMX), else in float32
# (slower); rerun whole in a fresh clone on the same kind of CPU it writes the shipped weights bit for bit.
# Dropout only in the UV-map decoder (--dropout 0 --uv-dropout 0.15) and AdamW's weight decay 0.05
# (--weight-decay): see "Training recipe" in docs/experiments.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
ITERATIONS=${ITERATIONS:-22000}
[ -f data/synth_train/index.csv ] || $PY -m pipelines.synth_cli samples --n 12000 --seed 1 --split train --out data/synth_train --workers 2
[ -f data/synth_test/index.csv ] || $PY -m pipelines.synth_cli samples --n 1000 --seed 1000 --split test --out data/synth_test --workers 2
BF16=()
if $PY -c "import sys, torch; from perspnet.train import bf16_supported; sys.exit(not bf16_supported(torch.device('cpu')))"; then
    BF16=(--bf16)
else
    echo "train_lite.sh: this CPU has no native bfloat16; training in float32 (slower, see the README)" >&2
fi
$PY -m pipelines.train_cli --config lite --data data/synth_train --out runs/lite --iterations "$ITERATIONS" \
    --batch-size 16 --lr 2e-3 --seed 0 --workers 0 --threads 2 --cache-gb 4 --dropout 0 --uv-dropout 0.15 \
    --weight-decay 0.05 "${BF16[@]}"
[ -f runs/direct/direct.pt ] || $PY -m pipelines.train_cli --direct --config lite --data data/synth_train \
    --out runs/direct --iterations 1500 --batch-size 16 --lr 1e-3 --seed 0 --workers 1 --threads 2
mkdir -p checkpoints
cp runs/lite/final.pt checkpoints/perspnet_lite.pt
cp runs/direct/direct.pt checkpoints/direct_lite.pt
$PY -m pipelines.eval_cli --data data/synth_test --checkpoint checkpoints/perspnet_lite.pt --baselines \
    --json runs/lite/eval.json
