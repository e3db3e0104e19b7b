#!/usr/bin/env bash
# Train several candidate default models side by side on one lent GPU, in one device call.
#
# Why: a device slot is ~15 minutes a session and a tiny model uses a sliver of an H100; the data workers
# (16 cores) are what runs out. Running three recipes at once (each with a third of the workers) costs one
# slot and tells which recipe learns to point, instead of betting the slot on one guess. Each candidate is
# a plain `benchmarks/train_default_gpu.sh` run, so the winner's line is its reproduce command.
#
# Knobs: MINUTES (training budget of each run, 8), WORKERS (data workers per run, 4), and CANDIDATES, one
# per line: "name ENV=value ENV=value ..." (the environment of train_default_gpu.sh for that run).
# Output: $OUT/<name>.tar.gz (final checkpoint, history, curve, config) and $OUT/<name>.log per candidate.
set -uo pipefail
OUT=${OUT:-/tmp/molmo-portfolio-out}
MINUTES=${MINUTES:-8}
WORKERS=${WORKERS:-4}
CANDIDATES=${CANDIDATES:-"fine PRESET=pointer-fine LR=7e-4 REUSE=4 EVAL_EVERY=100000 EVAL_SEEDS=32
fine-hot PRESET=pointer-fine LR=1.2e-3 REUSE=4 EVAL_EVERY=100000 EVAL_SEEDS=32
pooled PRESET=pointer-224 LR=1e-3 REUSE=4 EVAL_EVERY=100000 EVAL_SEEDS=32"}
mkdir -p "$OUT"
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.:envs
fi
export NO_WHEELS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
pids=()
while read -r name settings; do
  [ -z "$name" ] && continue
  echo "candidate $name: $settings"
  # shellcheck disable=SC2086  # settings are NAME=value words by design
  env $settings MINUTES="$MINUTES" WORKERS="$WORKERS" OUT="$OUT/$name" RUN="/tmp/molmo-portfolio/$name" \
    bash benchmarks/train_default_gpu.sh > "$OUT/$name.log" 2>&1 &
  pids+=($!)
done <<< "$CANDIDATES"
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for folder in "$OUT"/*/; do
  name=$(basename "$folder")
  mv "$folder/default_model.tar.gz" "$OUT/$name.tar.gz" 2>/dev/null
  rm -rf "$folder"
  grep '"eval"' "$OUT/$name.log" | tail -1 | sed "s/^/$name final: /"
done
ls -la "$OUT"
exit $status
