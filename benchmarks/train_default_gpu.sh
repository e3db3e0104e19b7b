#!/usr/bin/env bash
# Train the embedded default model (molmo_agent/default_model) on a lent GPU, as shipped.
#
# Runs on the device machine from the repo root, with the wheels of benchmarks/fetch_gpu_wheels.sh carried
# in .whl/ (transformers >= 5.20, tokenizers, gymnasium, ...). The same command (the default's recipe,
# `python -m molmo_agent.cli_pointer_recipe`: `molmo-agent finetune` plus its auxiliary losses) runs
# on a CPU (drop --device cuda and --workers 14); it takes hours there instead of minutes.
# Knobs (environment): MINUTES (6.8), STEPS, BATCH (64), LR (7e-4), WORKERS (15), REUSE (1; ~4 lets the GPU
# train on each rendered batch several times, since 15 cores render only ~8 batches/s), MODEL (continue from
# this checkpoint, e.g. molmo_agent/default_model, instead of a fresh model), PRESET (pointer-numbers-fine:
# 168-px unpooled crops, so a token is ~34 px of a phone screen and the right token's centre lies inside the
# named icon on 99% of screens (benchmarks/token_grid_ceiling.py; 77% for the 2x2-pooled 224-px presets),
# and one token per coordinate value; pointer-words the 224-px pooled model with one token per digit,
# pointer-224 with bytes, pointer for 140 px, pointer-fine unpooled 224 px),
# VISION_LR_SCALE (0.1: the ViT and adapter at a tenth of the lr, which keeps the image features from
# blowing up; see docs/training/README.md), ATTEND_WEIGHT (1: teach the attention at coordinate digits to
# look at the answer's point, which ends the loss plateau of a from-scratch model; 0 turns it off),
# PLACE_WEIGHT (3: teach the whole-image tokens' features to carry their own position, so the attended
# token's column can be read off it; 0 turns it off), AXIS_HEADS (set: a head per axis for the attention
# loss), WD (0),
# MIX (space-separated --data sources), DEVICE, EVAL_EVERY, EVAL_SEEDS, SEED, NO_WHEELS (use the installed
# packages). Curriculum: STAGE1_MIX and STAGE1_MINUTES train a first stage on easier data (e.g.
# "shapes:max1=0.5 shapes:max3=0.5": single and few shapes before whole screens); the main stage (MIX,
# MINUTES) then continues from its final checkpoint.
# Output: $OUT/default_model.tar.gz (the final checkpoint, history and learning curve) and $OUT/train.log.
set -uo pipefail
OUT=${OUT:-/tmp/molmo-train-out}
RUN=${RUN:-/tmp/molmo-train-run}
MINUTES=${MINUTES:-6.8}
mkdir -p "$OUT"
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.:envs
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
MIX=${MIX:-"shapes:max1=0.15 shapes:max4=0.15 synthetic_gui:icon,d0,fill,phone=0.3 synthetic_gui:icon,phone=0.1 synthetic_gui:icon=0.05 tabletop:max1=0.05 tabletop=0.2"}
mix=(); for source in $MIX; do mix+=(--data "$source"); done
if [ -n "${MODEL:-}" ]; then start=(--model "$MODEL"); else start=(--init-preset "${PRESET:-pointer-numbers-fine}"); fi
train() {  # train START_ARGS... -- OUT_DIR MINUTES SOURCES...
  local args=(); while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
  local out=$1 minutes=$2; shift 2
  python3 -m molmo_agent.cli_pointer_recipe -v "${args[@]}" --out "$out" "$@" \
    --steps "${STEPS:-20000}" --batch-size "${BATCH:-64}" --lr "${LR:-7e-4}" --warmup 200 --decay-fraction 0.3 \
    --vision-lr-scale "${VISION_LR_SCALE:-0.1}" --attend-weight "${ATTEND_WEIGHT:-1}" --place-weight "${PLACE_WEIGHT:-3}" \
    ${AXIS_HEADS:+--attend-axis-heads} \
    --weight-decay "${WD:-0}" \
    --no-bf16 --seed "${SEED:-0}" --eval-every "${EVAL_EVERY:-1000}" --eval-seeds "${EVAL_SEEDS:-24}" --save-every 1000 \
    --workers "${WORKERS:-15}" --reuse "${REUSE:-1}" --device "${DEVICE:-cuda}" --time-budget-min "$minutes" --no-progress 2>&1 \
    | grep --line-buffered -v "Writing model shards\|Loading weights" | tee -a "$OUT/train.log"
  return "${PIPESTATUS[0]}"
}
: > "$OUT/train.log"
if [ -n "${STAGE1_MIX:-}" ]; then
  stage1=(); for source in $STAGE1_MIX; do stage1+=(--data "$source"); done
  echo "stage 1 (${STAGE1_MINUTES:-2} min): $STAGE1_MIX" | tee -a "$OUT/train.log"
  train "${start[@]}" -- "$RUN/stage1" "${STAGE1_MINUTES:-2}" "${stage1[@]}" || exit 1
  cp "$RUN/stage1/history.jsonl" "$OUT/stage1_history.jsonl"; cp "$OUT/stage1_history.jsonl" "$RUN/"
  start=(--model "$RUN/stage1/final")
  echo "main stage ($MINUTES min): $MIX" | tee -a "$OUT/train.log"
fi
train "${start[@]}" -- "$RUN" "$MINUTES" "${mix[@]}"
status=$?
cp "$RUN/history.jsonl" "$OUT/" 2>/dev/null
tar -czf "$OUT/default_model.tar.gz" -C "$RUN" final history.jsonl stage1_history.jsonl learning_curve.png config.json 2>/dev/null
ls -la "$OUT"
exit $status
