#!/usr/bin/env bash
# The one GPU check (issue 14): GPU tests, then ALT-B/16 against the bare ViT-B/16 and full fine-tuning for r = 8 with
# each attention form and compile mode, encoder-only op/launch counts at r = 8 and r = 0, and the figures file
# (device, date, torch version, the three ratios per setting) for docs/figures/. Under 5 minutes on an H100/H200.
#
# On a lent GPU (carry=[".whl"], wheels from ../shared/device/wheels.sh):
#   SITE=$(mktemp -d) && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target "$SITE" .whl/*.whl && export PYTHONPATH="$SITE:$PWD/src" || exit; bash scripts/gpu_check.sh
# CPU dry run of the same steps on the tiny model (seconds; GPU tests skipped):  bash scripts/gpu_check.sh --dry-run
# Env: OUT (default: a temp dir), PY (python3), RO=0 skips the torch.compile(mode="reduce-overhead") step.
# Writes at most 6 files under $OUT (the device returns 8): log.txt, bench.json, encoder_ops.json,
# bench_reduce_overhead.json, gpu_tests.xml and <device>_<date>_issue14.json (copy the last into docs/figures/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PY:-python3}
LOG="$OUT/log.txt"
START=$(date +%s)
say() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }

if ! $PY -c "import open_clip, av, jsonargparse" 2>/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "could not install the carried wheels (.whl/, from ../shared/device/wheels.sh)" | tee -a "$LOG"; exit 1; }
  export PYTHONPATH="$SITE:$PWD/src:${PYTHONPATH:-}"
else
  export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
fi
# Caches outside $OUT: the device returns only a few files from it.
SCRATCH=$(mktemp -d)
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 ALT_CACHE_DIR="$SCRATCH/alt" TORCHINDUCTOR_CACHE_DIR="$SCRATCH/inductor"

GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
if [ "${1:-}" = "--dry-run" ] || [ "$GPU" != 1 ]; then
  DRY=1
  say "dry run (no GPU or --dry-run): tiny model on CPU, GPU tests skipped, no compile steps"
else
  DRY=0
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
fi
$PY -c "import torch, lightning, open_clip; print('torch', torch.__version__, 'lightning', lightning.__version__, \
'open_clip', open_clip.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$LOG"

# 1. GPU tests (the float32 review fixes, CUDA graphs, the flash path of the folded form, compiled encoders).
say "GPU tests"
timeout 150 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider -o addopts="" --junitxml="$OUT/gpu_tests.xml" \
  -rA 2>&1 | tail -25 | tee -a "$LOG"

# 2. ALT-B/16 (8 frames, r = 8; inference 32 clips, training 16) per encoder setting, one baseline measured first.
if [ "$DRY" = 1 ]; then
  ARGS="--model_name alt-tiny --frames 4 --batch 2 --steps 2 --warmup 1"
  VARIANTS="mask folded mask:cuda-graphs"
  OPS_ARGS="--model_name alt-tiny --frames 2 --batch 1 --steps 2 --warmup 1"
else
  ARGS="--model_name ViT-B-16 --frames 8 --batch 32 --train_batch 16 --corpus_size 2270 --steps 20 --warmup 5"
  VARIANTS="mask folded mask:cuda-graphs folded:cuda-graphs folded:merge"
  OPS_ARGS="--model_name ViT-B-16 --frames 8 --batch 32 --steps 10 --warmup 3"
fi
say "bench: $VARIANTS"
timeout 170 $PY -m alt_lightning bench $ARGS --r 8 --baseline --variants $VARIANTS --json "$OUT/bench.json" \
  >> "$LOG" 2>&1 || say "bench stopped early (exit $?); bench.json holds what was measured"

# 3. Encoder alone: aten ops and CUDA launches per forward, frames/s, at r = 8 and r = 0.
say "encoder ops and launches"
timeout 90 $PY -m alt_lightning bench --count_ops $OPS_ARGS --r 8 --variants $VARIANTS --json "$OUT/encoder_ops.json" \
  >> "$LOG" 2>&1 || say "op count stopped early (exit $?)"

# 4. torch.compile(mode="reduce-overhead") of the whole encoder, inference only (compilation is the slow part).
if [ "$DRY" = 0 ] && [ "${RO:-1}" = 1 ]; then
  say "reduce-overhead (inference only, bounded at 100 s)"
  timeout 100 $PY -m alt_lightning bench $ARGS --r 8 --baseline --no_train --variants folded:reduce-overhead \
    --json "$OUT/bench_reduce_overhead.json" >> "$LOG" 2>&1 || say "reduce-overhead stopped (exit $?): compile too slow"
fi

# 5. The figures file: device, date, torch, the three ratios per setting, op counts.
say "summary"
$PY - "$OUT" "$DRY" <<'PYEND' 2>&1 | tee -a "$LOG"
import json, pathlib, re, sys, time
out, dry = pathlib.Path(sys.argv[1]), sys.argv[2] == "1"
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.is_file() else {}
bench, ops, ro = load("bench.json"), load("encoder_ops.json"), load("bench_reduce_overhead.json")
tests = (out / "gpu_tests.xml").read_text() if (out / "gpu_tests.xml").is_file() else ""
m = re.search(r'tests="(\d+)"[^>]*', tests)
head = bench or ops
keep = ("attention", "compile", "infer_frames_s", "train_clips_s", "train_peak_gib", "compile_total_s",
        "compile_fallback", "ratio_infer_vs_bare", "ratio_train_vs_finetune", "ratio_train_memory_vs_finetune")
variants = [{k: v.get(k) for k in keep if k in v} for v in bench.get("variants", []) + ro.get("variants", [])]
summary = {
    "issue": 14,
    "dry_run": dry,
    "device": head.get("device"),
    "date": head.get("date", time.strftime("%Y-%m-%d")),
    "torch": head.get("torch"),
    "settings": {k: bench.get(k) for k in ("model_name", "frames", "r", "batch", "train_batch", "precision")},
    "baseline": {k: bench.get(k) for k in ("bare_infer_frames_s", "finetune_clips_s", "finetune_peak_gib")},
    "targets": {"ratio_infer_vs_bare": ">= 1.20", "ratio_train_vs_finetune": ">= 3",
                "ratio_train_memory_vs_finetune": "<= 0.33"},
    "variants": variants,
    "encoder_ops": ops.get("encoder_ops", []),
    "gpu_tests": re.findall(r'<testsuite [^>]*', tests)[0] if tests else None,
}
slug = re.sub(r"[^a-z0-9]+", "_", str(summary["device"]).lower()).strip("_") or "device"
name = f"{'dryrun_' if dry else ''}{slug}_{summary['date']}_issue14.json"
(out / name).write_text(json.dumps(summary, indent=2))
print(f"wrote {name}")
for v in variants:
    print(f"  {v.get('attention')}:{v.get('compile')}: " + ", ".join(
        f"{k.replace('ratio_', '')} {v[k]:.3f}" for k in keep[7:] if isinstance(v.get(k), float)))
for row in summary["encoder_ops"]:
    print(f"  ops {row['attention']}:{row['compile']} r={row['r']}: innermost {row['innermost']}, dispatched "
          f"{row['dispatched']}, cuda launches {row.get('cuda_launches', '-')}, {row['frames_s']:.0f} frames/s")
PYEND
say "done; outputs in $OUT"
