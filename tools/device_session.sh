#!/usr/bin/env bash
# One lent-GPU call: install against .prebuilt/libmixgemm.so (tools/build_prebuilt.sh), then the
# steps in $STEPS (default: test,sanitize,bench; add 'tune' for a new profile plus the independent
# re-measurement and unseen shapes that benchmarks/dispatch_report.py judges it with).
# Files in $OUT (the device tool returns at most 8): log.txt, pytest.txt, sanitize.txt, bench.md,
# bench.json, bench.png, and with tune profile.json, fresh.json, unseen.json (then drop sanitize).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-test,sanitize,bench}
export PYTHONUNBUFFERED=1
SRC=$PWD
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/log.txt"; }
has() { [[ ",$STEPS," == *",$1,"* ]]; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv >> "$OUT/log.txt"
MIXGEMM_PREBUILT_LIBRARY=$SRC/.prebuilt/libmixgemm.so python3 -m pip install --no-build-isolation --no-deps -q . \
  >> "$OUT/log.txt" 2>&1 || { tail -40 "$OUT/log.txt"; exit 1; }
log installed
cd /tmp  # import the installed package, not the source tree
python3 "$SRC/examples/quickstart.py" >> "$OUT/log.txt" 2>&1; log "quickstart rc=$?"
grep -E "pick:|relative error" "$OUT/log.txt"
if has test; then
  python3 -m pytest -q -rs -p no:cacheprovider "$SRC/tests" > "$OUT/pytest.txt" 2>&1; log "pytest rc=$?"
  tail -4 "$OUT/pytest.txt"
fi
if has sanitize; then
  timeout 300 python3 "$SRC/tests/sanitize.py" --timeout 120 > "$OUT/sanitize.txt" 2>&1; log "sanitize rc=$?"
  tail -9 "$OUT/sanitize.txt"
fi
profile=()
if has tune; then
  python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --out "$OUT/profile.json" >> "$OUT/log.txt" 2>&1
  log "tune rc=$?"
  python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --formats s4:bf16,u4:f16 --out "$OUT/fresh.json" \
    >> "$OUT/log.txt" 2>&1; log "fresh rc=$?"
  python3 -m mixgemm.cli tune --shapes 4608:3584,37888:3584,3584:18944,18432:16384,16384:53248,9216:3072 \
    --m 1,3,16,48,100,256,700,1024,3000,4096 --formats s4:bf16 --out "$OUT/unseen.json" >> "$OUT/log.txt" 2>&1
  log "unseen rc=$?"
  profile=(env MIXGEMM_PROFILE="$OUT/profile.json")
fi
if has bench; then
  "${profile[@]}" python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b --m 1,16,64,256,1024,4096 \
    --vs cublas,tinygemm,scaled_mm --markdown "$OUT/bench.md" --json "$OUT/bench.json" --plot "$OUT/bench.png" \
    >> "$OUT/log.txt" 2>&1; log "bench rc=$?"
  cat "$OUT/bench.md"
fi
