#!/usr/bin/env bash
# One lent-GPU session: install against a prebuilt libmixgemm, run the tests and the benchmark.
# Usage (device tool, repo root): bash tools/device_run.sh [pytest args...]; results land in $OUT.
# Expects .prebuilt/libmixgemm.so (built on a CPU machine: tools/build_prebuilt.sh).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
start=$(date +%s)
MIXGEMM_PREBUILT_LIBRARY=$PWD/.prebuilt/libmixgemm.so python3 -m pip install --no-build-isolation --no-deps -q . \
  > "$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
echo "install: $(( $(date +%s) - start )) s"
cd /tmp  # import the installed package, not the source tree
python3 "$OLDPWD/examples/quickstart.py" 2>&1 | tee "$OUT/quickstart.txt"
python3 -m pytest -q -rs -p no:cacheprovider "$OLDPWD/tests" --junitxml="$OUT/junit.xml" "$@" 2>&1 | tee "$OUT/pytest.txt" | tail -25
if [ -z "${SKIP_BENCH:-}" ]; then
  python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b --m 1,16,64,256,1024,4096 --vs cublas,tinygemm \
    --markdown "$OUT/bench.md" --json "$OUT/bench.json" > "$OUT/bench.log" 2>&1 || tail -30 "$OUT/bench.log"
  cat "$OUT/bench.md"
fi
if [ -n "${SANITIZE:-}" ]; then
  timeout 420 python3 "$OLDPWD/tests/sanitize.py" --timeout 200 2>&1 | tee "$OUT/sanitize.txt" | tail -12
fi
if [ -n "${TUNE:-}" ]; then
  python3 -m mixgemm.cli tune --out "$OUT/profile.json" $TUNE 2>&1 | tail -3
fi
echo "total: $(( $(date +%s) - start )) s"
