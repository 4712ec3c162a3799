#!/usr/bin/env bash
# One lent-GPU session, prepared to run unattended inside one command (benchmarks/README.md, "On a lent GPU"):
#   1. the GPU speed table of the published run (widths 128/64/32, batches 1/8/32; bf16 at width 128, batch 8;
#      TF32 off at width 128, batches 1 and 8 — PyTorch's default runs float32 convolutions in TF32),
#      alone on the card: paper_speed_gpu.csv / .md;
#   2. the published method on Levin at width 128 (all 32 images, seed 2024, or the one-per-kernel subset
#      when all do not fit; the subset also seeds 1 and 2 when they fit) and at width 32 (the subset, seeds
#      2024, 1, 2): worker processes side by side; what runs is planned from the speed table (gpu_plan.py)
#      so that every started batch ends inside the budget;
#   3. rows, curves, logs and outputs packed into at most 8 files under $OUT.
# Usage on the device machine (Levin data copied to LEVIN, a folder inside the repository there):
#   LEVIN=.levin BUDGET_S=540 bash benchmarks/gpu_session.sh
# Back here: tar xzf each levin_*.tgz -C ~/.cache/cbid_meta/levin_paper, then
#   .venv/bin/python benchmarks/levin_paper.py --report-only
# DEVICE, WA, WB, IMAGES_A, STEPS_ARG, PLAN_STEPS, SPEED_WIDTHS, SPEED_BATCHES, PARALLEL override the defaults
# (to try the script on a CPU with tiny settings).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 CBID_LEVIN_DIR=${LEVIN:-.levin}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
WA=${WA:-128}; WB=${WB:-32}; IMAGES_A=${IMAGES_A:-all}; STEPS_ARG=${STEPS_ARG:-}
SPEED_WIDTHS=${SPEED_WIDTHS:-128,64,32}; SPEED_BATCHES=${SPEED_BATCHES:-1,8,32}; PARALLEL=${PARALLEL:-8}
T0=$(date +%s)
END=$((T0 + ${BUDGET_S:-540}))
W=${WORK:-/tmp/levin_paper}
mkdir -p "$W"
LOG=$OUT/session.log
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv
  $PY -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda")'
} > "$LOG" 2>&1

# 0. the step never waits for the GPU (tests/test_published.py, skipped where no GPU is)
timeout 120 $PY -m pytest -q -p no:cacheprovider -o addopts="" tests/test_published.py -k never_waits >> "$LOG" 2>&1

# 1. speed (alone on the card)
timeout 150 $PY benchmarks/paper_speed.py --published --device "$DEVICE" --widths "$SPEED_WIDTHS" --batches "$SPEED_BATCHES" --iters 20 \
  --out "$OUT/paper_speed_gpu.csv" >> "$LOG" 2>&1
timeout 40 $PY benchmarks/paper_speed.py --published --device "$DEVICE" --widths "$WA" --batches 8 --autocast bf16 --iters 20 \
  --out "$W/paper_speed_gpu_bf16.csv" >> "$LOG" 2>&1
timeout 40 $PY benchmarks/paper_speed.py --published --device "$DEVICE" --widths "$WA" --batches 1,8 --tf32 off --iters 20 \
  --out "$W/paper_speed_gpu_tf32_off.csv" >> "$LOG" 2>&1

# 2. plan from the speed table: seconds per problem-iteration at batch 8 in one process; the workers share
#    the card, so a pass costs about runs x 5000 x that, and each worker's batch lasts about the whole pass
PLAN=$($PY benchmarks/gpu_plan.py "$OUT/paper_speed_gpu.csv" "$END" "$WA" "$WB" "${PLAN_STEPS:-5000}")
read -r IMAGES EXTRA BATCH DOB ESTA ESTB <<< "$PLAN"
[ "$EXTRA" = "-" ] && EXTRA=""
[ "$IMAGES_A" != all ] && IMAGES=$IMAGES_A
echo "plan: width $WA images $IMAGES, extra subset seeds '${EXTRA}', batch $BATCH, width $WB pass ${DOB}, estimated ${ESTA} / ${ESTB} s" | tee -a "$LOG"

$PY benchmarks/levin_paper.py --device "$DEVICE" --width "$WA" --images "$IMAGES" --seeds 2024 --subset-seeds "$EXTRA" \
  --batch "$BATCH" --parallel "$PARALLEL" $STEPS_ARG --deadline $((END - 25)) --batch-seconds "$ESTA" --curve-every 250 \
  --checkpoint-every 1000000 --work "$W" --out "$W/levin_paper.csv" --curve "$W/levin_paper_curve.csv" >> "$LOG" 2>&1
if [ "$DOB" = 1 ]; then
  $PY benchmarks/levin_paper.py --device "$DEVICE" --width "$WB" --images subset --seeds 2024,1,2 \
    --batch 32 --parallel "$PARALLEL" $STEPS_ARG --deadline $((END - 20)) --batch-seconds "$ESTB" --curve-every 250 \
    --checkpoint-every 1000000 --work "$W" --out "$W/levin_paper.csv" --curve "$W/levin_paper_curve.csv" >> "$LOG" 2>&1
fi
echo "levin passes ended after $(( $(date +%s) - T0 )) s" >> "$LOG"

# 3. pack: the small files in one archive, the outputs in archives of at most 15 MiB (before compression)
(cd "$W" && tar czf "$OUT/levin_meta.tgz" rows curve logs levin_paper.csv levin_paper.md levin_paper_curve.csv paper_speed_gpu_bf16.csv paper_speed_gpu_tf32_off.csv) 2>> "$LOG"
$PY benchmarks/gpu_plan.py --pack "$W/outputs" "$OUT" >> "$LOG" 2>&1
echo "session ended after $(( $(date +%s) - T0 )) s" >> "$LOG"
tail -n 12 "$LOG"
