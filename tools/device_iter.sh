#!/usr/bin/env bash
# One GPU-machine iteration (see tools/device_session.sh for the full session): build a wheel of
# $MIXGEMM_KERNELS (default: the default set) into $OUT/wheel, install it, then
# the decode probe's correctness run, the split-K forward-progress test, the layer bench.
set -uo pipefail
export CUTLASS_DIR=$PWD/.cutlass PYTHONUNBUFFERED=1 SRC=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/wheel"
t0=$(date +%s)
export MIXGEMM_KERNELS=${MIXGEMM_KERNELS:-default}
if ls .wheelhouse/*.whl > /dev/null 2>&1; then python3 -m pip install --no-deps -q --force-reinstall .wheelhouse/*.whl
else
  python3 -m pip wheel --no-build-isolation --no-deps -w "$OUT/wheel" . > "$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; exit 1; }
  python3 -m pip install --no-deps -q --force-reinstall "$OUT"/wheel/*.whl
fi
echo "[$(( $(date +%s) - t0 ))s] installed: $(cd /tmp && python3 -c 'import mixgemm; print(len(mixgemm.kernels()))') kernels"
has() { [[ ",${ITER_STEPS:-probe,fp,layer}," == *",$1,"* ]]; }
if has probe; then
  nvcc -std=c++17 -O3 --expt-relaxed-constexpr -Iinclude -gencode=arch=compute_90,code=sm_90 tools/decode_probe.cu -o /tmp/decode_probe > "$OUT/probe_build.txt" 2>&1 || tail -20 "$OUT/probe_build.txt"
  timeout 150 /tmp/decode_probe ${PROBE_ARGS:---quick} > "$OUT/probe.txt" 2>&1; rc=$?
  echo "[$(( $(date +%s) - t0 ))s] probe rc=$rc"; tail -4 "$OUT/probe.txt"
fi
cd /tmp
if has fp; then
  timeout 300 python3 -m pytest -q -x -p no:cacheprovider "$SRC/tests/gpu/test_forward_progress.py" > "$OUT/fp.txt" 2>&1; rc=$?
  echo "[$(( $(date +%s) - t0 ))s] forward progress rc=$rc"; tail -4 "$OUT/fp.txt"
fi
if has layer; then
  timeout 150 python3 -m mixgemm.cli bench --layer llama3-8b --m 1,16 2>&1 | grep "per layer"
  echo "[$(( $(date +%s) - t0 ))s] layer done"
fi
if has test; then
  timeout 400 python3 -m pytest -q -x -p no:cacheprovider ${TEST_ARGS:-} "$SRC/tests" > "$OUT/pytest.txt" 2>&1; rc=$?
  echo "[$(( $(date +%s) - t0 ))s] pytest rc=$rc"; tail -6 "$OUT/pytest.txt"
fi
