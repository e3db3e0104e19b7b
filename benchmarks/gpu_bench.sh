#!/usr/bin/env bash
# Run `molmo-agent bench gpu` on the lent GPU machine (or any CUDA box whose transformers is too old).
#
#   bash benchmarks/gpu_bench.sh [extra bench arguments]
#
# Installs the carried wheels in .whl/ (see fetch_gpu_wheels.sh) into a temporary folder that shadows the
# image's transformers, then runs the benchmark on the 8B shape. Results: gpu_bench_<gpu>_<date>.json and
# the log, in $OUT when it is set (the device tool's output folder), else benchmarks/results/.
# Environment knobs: WHEELS (.whl), SIZE (8b), BUDGET_S (380: no phase starts past it), TIMEOUT_S (460: hard stop; the
# JSON is rewritten after every phase, so a stop keeps what was measured).
set -uo pipefail
cd "$(dirname "$0")/.."
site="$(mktemp -d /tmp/molmo-site.XXXXXX)"
wheels="${WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl \
        || exit 1
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
results="${OUT:-benchmarks/results}"
mkdir -p "$results"
gpu="$(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")' \
    | tr -c 'A-Za-z0-9\n' '_' | sed 's/_*$//')"
json="$results/gpu_bench_${gpu}_$(date +%F).json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
timeout "${TIMEOUT_S:-460}" python3 -m molmo_agent.cli bench gpu --size "${SIZE:-8b}" \
    --budget-s "${BUDGET_S:-380}" --out "$json" "$@" 2>&1 | tee "$results/gpu_bench.log"
status=${PIPESTATUS[0]}
echo "exit status $status; results in $json"
exit "$status"
