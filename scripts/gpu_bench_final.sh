#!/usr/bin/env bash
# The figures of docs/benchmarks.md in one short GPU call: GPU tests, then the ALT-B/16 bench with baselines, r = 0,
# and r = 8 with the frozen tower cast to bf16. Imports only the model code (not the CLI).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PY:-python3}
if ! $PY -c "import open_clip, av, jsonargparse" 2>/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
  export PYTHONPATH="$SITE:$PWD/src:${PYTHONPATH:-}"
else
  export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"
timeout 70 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider -o addopts="" 2>&1 | tail -3 | tee "$OUT/gpu_tests.log"
bench() { timeout 60 $PY -c "import sys; from alt_lightning.commands.bench import main; main(sys.argv[1:])" "$@"; }
A=${BENCH_ARGS:-"--model_name ViT-B-16 --frames 8 --batch 32 --train_batch 16 --corpus_size 2270 --steps 20 --warmup 5"}
bench $A --r 8 --baseline --json "$OUT/b16_r8.json" > "$OUT/b16_r8.log" 2>&1
bench $A --r 0 --json "$OUT/b16_r0.json" > "$OUT/b16_r0.log" 2>&1
bench $A --r 8 --baseline --frozen_cast --json "$OUT/b16_r8_cast.json" > "$OUT/b16_r8_cast.log" 2>&1
$PY - "$OUT" <<'PYEND'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("b16_*.json")):
    d = json.loads(f.read_text())
    keys = ["frozen_weights", "gflops_total", "infer_frames_s", "train_clips_s", "train_peak_gib", "bare_infer_frames_s",
            "bare_bf16w_infer_frames_s", "finetune_clips_s", "finetune_peak_gib", "ratio_infer_vs_bare",
            "ratio_train_vs_finetune", "ratio_train_memory_vs_finetune"]
    print(f.stem, {k: round(d[k], 3) if isinstance(d.get(k), float) else d.get(k) for k in keys if k in d})
PYEND
