#!/usr/bin/env bash
# Second half of a lent-GPU session (after tools/device_run.sh installed the package on this machine):
# tune, re-measure for the dispatch report, benchmark with the profile. Results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
( cd /tmp && python3 -c "import mixgemm._C" 2>/dev/null ) || MIXGEMM_PREBUILT_LIBRARY=$PWD/.prebuilt/libmixgemm.so \
  python3 -m pip install --no-build-isolation --no-deps -q . > "$OUT/install.log" 2>&1 || { tail -30 "$OUT/install.log"; exit 1; }
cd /tmp
[ -n "${DIAG:-}" ] && python3 "$OLDPWD/$DIAG" 2>&1 | tee "$OUT/diag.txt"
python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --out "$OUT/profile.json" 2>&1 | tail -1
echo "tune: $(( $(date +%s) - start )) s"
python3 -m mixgemm.cli tune --shapes llama3-8b,llama3-70b --formats s4:bf16,u4:f16 --out "$OUT/fresh.json" 2>&1 | tail -1
python3 -m mixgemm.cli tune --shapes 4608:3584,37888:3584,3584:18944,18432:16384,16384:53248,9216:3072 \
  --m 1,3,16,48,100,256,700,1024,3000,4096 --formats s4:bf16 --out "$OUT/unseen.json" 2>&1 | tail -1
echo "tunes: $(( $(date +%s) - start )) s"
MIXGEMM_PROFILE="$OUT/profile.json" python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b \
  --m 1,16,64,256,1024,4096 --vs cublas,tinygemm,scaled_mm --markdown "$OUT/bench.md" --json "$OUT/bench.json" \
  --plot "$OUT/bench.png" > "$OUT/bench.log" 2>&1 || tail -30 "$OUT/bench.log"
cat "$OUT/bench.md"
echo "total: $(( $(date +%s) - start )) s"
