#!/usr/bin/env bash
# One lent-GPU session for the meta-learned start of the published method (docs/meta.md, "The published generators"):
#   1. meta-train the width-32 initialiser (recipes/meta_published_w32.toml) until META_S seconds have passed
#      (it checkpoints every outer step: a stop loses nothing; --resume continues it, here or on the CPU);
#   2. the Levin subset from that initialiser at the budgets BUDGETS (levin_paper.py --init, one process per budget,
#      side by side) and from scratch at the same shortened budgets;
#   3. rows, curves, outputs, the training folder and the initialiser packed under $OUT.
# Usage on the device machine (Levin data copied to LEVIN, a folder inside the repository there):
#   LEVIN=.levin BUDGET_S=540 META_S=300 bash benchmarks/gpu_meta_session.sh
# Back here: tar xzf meta_session.tgz -C ~/.cache/cbid_meta, then
#   .venv/bin/python benchmarks/meta_published.py --scratch ~/.cache/cbid_meta/levin_paper --meta ~/.cache/cbid_meta/levin_meta
# (the 5000-iteration scratch rows come from benchmarks/levin_paper.py --width 32, on either machine).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 CBID_LEVIN_DIR=${LEVIN:-.levin}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUDGETS=${BUDGETS:-250,500,1000}
META_ARGS=${META_ARGS:---task-batch 0 --meta-batch 4 --outer-steps 40}
T0=$(date +%s)
END=$((T0 + ${BUDGET_S:-540}))
W=${WORK:-/tmp/meta_session}
mkdir -p "$W"
LOG=$OUT/session.log
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv; } > "$LOG" 2>&1

# 1. meta-training, stopped at META_S (the last finished outer step is in last.safetensors)
timeout "${META_S:-300}" $PY -m cbid_meta.cli.main meta-train -m meta_published_w32 --device "$DEVICE" -o "$W/meta_train" $META_ARGS >> "$LOG" 2>&1
if [ ! -f "$W/meta_train/init.safetensors" ]; then  # stopped mid-run: export the last checkpoint as an initialiser
  $PY -m cbid_meta.cli.main meta-train -m meta_published_w32 --device "$DEVICE" -o "$W/meta_train" $META_ARGS --resume \
    --outer-steps "$($PY -c "import json; print(json.load(open('$W/meta_train/last.json'))['step'])")" >> "$LOG" 2>&1
fi
echo "meta-training ended after $(( $(date +%s) - T0 )) s" >> "$LOG"

# 2. the subset from the initialiser and from scratch, every budget side by side
for B in ${BUDGETS//,/ }; do
  $PY benchmarks/levin_paper.py --device "$DEVICE" --width 32 --images subset --steps "$B" --init "$W/meta_train/init.safetensors" \
    --batch 8 --checkpoint-every 1000000 --work "$W/levin_meta" --out "$W/levin_meta/levin_meta_runs_$B.csv" \
    --curve "$W/levin_meta/levin_meta_curve_$B.csv" >> "$LOG" 2>&1 &
  $PY benchmarks/levin_paper.py --device "$DEVICE" --width 32 --images subset --steps "$B" \
    --batch 8 --checkpoint-every 1000000 --work "$W/levin_paper" --out "$W/levin_paper/levin_scratch_$B.csv" \
    --curve "$W/levin_paper/levin_scratch_curve_$B.csv" >> "$LOG" 2>&1 &
done
while [ -n "$(jobs -r)" ] && [ "$(date +%s)" -lt $((END - 20)) ]; do sleep 5; done
kill $(jobs -p) 2> /dev/null
echo "levin runs ended after $(( $(date +%s) - T0 )) s" >> "$LOG"

# 3. pack
(cd "$W" && tar czf "$OUT/meta_session.tgz" meta_train levin_meta levin_paper) 2>> "$LOG"
echo "session ended after $(( $(date +%s) - T0 )) s" >> "$LOG"
tail -n 12 "$LOG"
