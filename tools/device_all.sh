#!/usr/bin/env bash
# A whole lent-GPU session in one call: install against .prebuilt/libmixgemm.so, every test, tune
# (profile + an independent re-measurement + unseen shapes), and the benchmark with the new profile.
# Writes at most 8 files to $OUT (the device tool's limit): log.txt, pytest.txt, profile.json,
# fresh.json, unseen.json, bench.md, bench.json, bench.png.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SRC=$PWD
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/log.txt"; }
start=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv >> "$OUT/log.txt"
MIXGEMM_PREBUILT_LIBRARY=$SRC/.prebuilt/libmixgemm.so python3 -m pip install --no-build-isolation --no-deps -q . \
  >> "$OUT/log.txt" 2>&1 || { tail -40 "$OUT/log.txt"; exit 1; }
log installed
cd /tmp
python3 "$SRC/examples/quickstart.py" >> "$OUT/log.txt" 2>&1; log "quickstart rc=$?"
python3 -m pytest -q -rs -p no:cacheprovider "$SRC/tests" > "$OUT/pytest.txt" 2>&1; log "pytest rc=$?"
tail -4 "$OUT/pytest.txt"
[ -n "${NO_TUNE:-}" ] && exit 0
python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --out "$OUT/profile.json" >> "$OUT/log.txt" 2>&1; log "tune rc=$?"
python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --formats s4:bf16,u4:f16 --out "$OUT/fresh.json" \
  >> "$OUT/log.txt" 2>&1; log "fresh rc=$?"
python3 -m mixgemm.cli tune --shapes 4608:3584,37888:3584,3584:18944,18432:16384,16384:53248,9216:3072 \
  --m 1,3,16,48,100,256,700,1024,3000,4096 --formats s4:bf16 --out "$OUT/unseen.json" >> "$OUT/log.txt" 2>&1
log "unseen rc=$?"
MIXGEMM_PROFILE="$OUT/profile.json" python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b \
  --m 1,16,64,256,1024,4096 --vs cublas,tinygemm,scaled_mm --markdown "$OUT/bench.md" --json "$OUT/bench.json" \
  --plot "$OUT/bench.png" >> "$OUT/log.txt" 2>&1; log "bench rc=$?"
cat "$OUT/bench.md"
