#!/usr/bin/env bash
# GPU check, one call on a lent H100/H200 (or any CUDA machine): GPU-only tests, then `alt bench` for ALT-B/16 with
# its baselines (bare ViT-B/16 tower, full fine-tuning). Writes logs and JSON under $OUT. Under 5 minutes.
# Wheels the GPU image lacks (open_clip, av, jsonargparse, ...) travel in .whl/ (../shared/device/wheels.sh).
# On a CPU machine the GPU steps are skipped and the bench runs on the tiny model, so the script itself is tested.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PY:-python3}
if ! $PY -c "import open_clip, av, jsonargparse" 2>/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "could not install the carried wheels"; exit 1; }
  export PYTHONPATH="$SITE:$PWD/src:${PYTHONPATH:-}"
else
  export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
fi
export HF_HUB_OFFLINE=1 ALT_CACHE_DIR="$OUT/cache" PYTHONUNBUFFERED=1
date -u +"%Y-%m-%dT%H:%M:%SZ" | tee "$OUT/date.txt"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  GPU=1
else
  echo "no GPU: GPU tests are skipped, bench runs the tiny model on CPU" | tee "$OUT/gpu.txt"
  GPU=0
fi
$PY -c "import torch, lightning, open_clip; print('torch', torch.__version__, 'lightning', lightning.__version__, \
'open_clip', open_clip.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/versions.txt"

# 1. GPU-only tests (skipped without a GPU).
timeout 90 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider -o addopts="" 2>&1 | tee "$OUT/gpu_tests.log"

# 2. Bench: ALT-B/16 (8 frames, r = 8) against the bare tower and full fine-tuning, then ToMe off (r = 0).
if [ "$GPU" = 1 ]; then
  ARGS="--model_name ViT-B-16 --frames 8 --batch 32 --train_batch 16 --steps 20 --warmup 5"
else
  ARGS="--model_name alt-tiny --frames 8 --batch 4 --steps 3 --warmup 1"
fi
timeout 150 $PY -m alt_lightning bench $ARGS --r 8 --baseline --json "$OUT/bench_r8.json" 2>&1 | tee "$OUT/bench_r8.log"
timeout 60 $PY -m alt_lightning bench $ARGS --r 0 --json "$OUT/bench_r0.json" 2>&1 | tee "$OUT/bench_r0.log"
# 3. Optional: torch.compile of the region encoder (compilation can take minutes; skipped on CPU).
if [ "$GPU" = 1 ] && [ "${COMPILE:-1}" = 1 ]; then
  timeout 100 $PY -m alt_lightning bench $ARGS --r 8 --compile --json "$OUT/bench_r8_compile.json" 2>&1 \
    | tee "$OUT/bench_r8_compile.log"
fi
echo "gpu_check done; outputs in $OUT"
