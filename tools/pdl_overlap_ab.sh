#!/usr/bin/env bash
# A/B of the decode kernel's PDL overlap knobs (L2 prefetch before griddepcontrol.wait; reading
# inputs before it when they are known ready, MIXGEMM_INPUTS_READY) on the layer benchmark, one
# GPU-machine call, decode kernels only. A wheel in .wheelhouse/ is installed instead of building.
# Usage (repo root on the GPU machine, .cutlass carried): CONFIGS="0:0 8192:1" bash tools/pdl_overlap_ab.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUTLASS_DIR=$PWD/.cutlass
SRC=$PWD
if ls .wheelhouse/*.whl > /dev/null 2>&1; then python3 -m pip install --no-deps -q --force-reinstall .wheelhouse/*.whl
else
  MIXGEMM_KERNELS=${MIXGEMM_KERNELS:-dec} python3 -m pip install --no-build-isolation --no-deps -q . > "$OUT/build.txt" 2>&1 \
    || { tail -40 "$OUT/build.txt"; exit 1; }
fi
cd /tmp
for model in ${MODELS:-llama3-8b}; do
  for cfg in ${CONFIGS:-8192:1 8192:0 0:1 0:0}; do
    echo "== $model prefetch_bytes_per_warp=${cfg%:*} inputs_ready=${cfg#*:}"
    MIXGEMM_DECODE_PREFETCH_BYTES=${cfg%:*} MIXGEMM_INPUTS_READY=${cfg#*:} timeout 120 \
      python3 -m mixgemm.cli bench --layer "$model" --m ${LAYER_M:-1,16} 2>&1 | grep -E "per layer|Error|error" | tail -4
  done
done
