#!/usr/bin/env bash
# Recreate .whl/: the wheels the GPU machine's image lacks for `molmo-agent bench gpu`.
#
# That image has torch 2.11 (CUDA), torchvision, numpy, pillow, safetensors, huggingface-hub and accelerate,
# but transformers 5.17 (native Molmo2 needs >= 5.20) and no gymnasium (the training data). These wheels (for CPython 3.12,
# x86-64, no dependencies) are what the last runs there needed; .whl/ is ignored by git and travels with
# `carry: [".whl"]`. Run from anywhere on a machine that can reach PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-path info/exclude)"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl \
    transformers==5.24.0 tokenizers==0.23.3 regex==2026.11.19 typer==0.29.2 \
    gymnasium==1.4.0 farama-notifications==0.0.4
ls -l .whl
