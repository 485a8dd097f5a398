#!/usr/bin/env bash
# Verification call on a lent GPU: install against .prebuilt/libmixgemm.so, every test, the
# sanitizer, and the benchmark with the shipped profile. Files in $OUT: log.txt, pytest.txt,
# sanitize.txt, bench.md, bench.json, bench.png.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SRC=$PWD
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv >> "$OUT/log.txt"
MIXGEMM_PREBUILT_LIBRARY=$SRC/.prebuilt/libmixgemm.so python3 -m pip install --no-build-isolation --no-deps -q . \
  >> "$OUT/log.txt" 2>&1 || { tail -40 "$OUT/log.txt"; exit 1; }
log installed
cd /tmp
python3 "$SRC/examples/quickstart.py" >> "$OUT/log.txt" 2>&1; log "quickstart rc=$?"
grep -E "pick:|relative error" "$OUT/log.txt"
python3 -m pytest -q -rs -p no:cacheprovider "$SRC/tests" > "$OUT/pytest.txt" 2>&1; log "pytest rc=$?"
tail -4 "$OUT/pytest.txt"
timeout 300 python3 "$SRC/tests/sanitize.py" --timeout 120 > "$OUT/sanitize.txt" 2>&1; log "sanitize rc=$?"
tail -9 "$OUT/sanitize.txt"
python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b --m 1,16,64,256,1024,4096 --vs cublas,tinygemm,scaled_mm \
  --markdown "$OUT/bench.md" --json "$OUT/bench.json" --plot "$OUT/bench.png" >> "$OUT/log.txt" 2>&1; log "bench rc=$?"
cat "$OUT/bench.md"
