#!/usr/bin/env bash
# One GPU-machine call (run from the repo root there, with .cutlass/ carried: CUTLASS's headers).
# Steps in $STEPS, comma-separated, in this order:
#   build     pip install from source, offline, as the README's offline command (MIXGEMM_KERNELS, default 'default')
#   prebuilt  install against .prebuilt/libmixgemm.so instead (tools/build_prebuilt.sh)
#   probe     tools/decode_probe.cu: the decode kernel alone, correctness and timing (under a timeout)
#   test      the README's test command (pytest), CUTLASS_DIR set so the layout test runs
#   sanitize  compute-sanitizer memcheck + racecheck, one kernel per family and format
#   bench     mixgemm bench on the Llama-3 shapes, peers in the same run, --graph
#   layer     mixgemm bench --layer llama3-8b at M = 1 and 16
#   sweep     mixgemm bench on shapes outside the Llama-3 six
#   tune      mixgemm tune -> $OUT/profile.json (bench/layer then use it)
#   ncu       Nsight Compute on the decode kernel at M=1 (tools/ncu_decode.py)
# Files in $OUT (the device tool returns at most 8): log.txt and one file per step.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-build,test,bench}
export PYTHONUNBUFFERED=1 CUTLASS_DIR=$PWD/.cutlass
SRC=$PWD
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/log.txt"; }
has() { [[ ",$STEPS," == *",$1,"* ]]; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv >> "$OUT/log.txt"
if ls .whl/*.whl > /dev/null 2>&1; then  # peers carried as wheels (FBGEMM GenAI, gemlite)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >> "$OUT/log.txt" 2>&1 && export PYTHONPATH=/tmp/site && log "peers installed: $(ls .whl)"
fi
if has build; then
  MIXGEMM_KERNELS=${MIXGEMM_KERNELS:-default} python3 -m pip install --no-build-isolation --no-deps -q . \
    >> "$OUT/log.txt" 2>&1 || { tail -60 "$OUT/log.txt"; exit 1; }
  log "built from source: $(python3 -c 'import mixgemm; print(len(mixgemm.kernels()))' 2>&1) kernels"
fi
if has prebuilt; then
  MIXGEMM_PREBUILT_LIBRARY=$SRC/.prebuilt/libmixgemm.so python3 -m pip install --no-build-isolation --no-deps -q . \
    >> "$OUT/log.txt" 2>&1 || { tail -60 "$OUT/log.txt"; exit 1; }
  log installed prebuilt
fi
if has probe; then
  nvcc -std=c++17 -O3 --expt-relaxed-constexpr -Iinclude -gencode=arch=compute_90,code=sm_90 tools/decode_probe.cu \
    -o /tmp/decode_probe >> "$OUT/log.txt" 2>&1 && timeout 150 /tmp/decode_probe ${PROBE_ARGS:-} > "$OUT/probe.txt" 2>&1
  log "probe rc=$?"
  tail -60 "$OUT/probe.txt"
fi
cd /tmp  # import the installed package, not the source tree
profile=()
if has tune; then
  python3 -m mixgemm.cli tune --shapes ${TUNE_SHAPES:-llama3-8b,llama3-70b,4096:4096,1024:4096,14336:4096,8192:8192,1024:8192,28672:8192} --out "$OUT/profile.json" >> "$OUT/log.txt" 2>&1
  log "tune rc=$?"
  profile=(env MIXGEMM_PROFILE="$OUT/profile.json")
fi
if has test; then
  python3 "$SRC/examples/quickstart.py" >> "$OUT/log.txt" 2>&1; log "quickstart rc=$?"
  timeout 900 python3 -m pytest -q -rs --maxfail=20 -p no:cacheprovider "$SRC/tests" > "$OUT/pytest.txt" 2>&1; log "pytest rc=$?"
  tail -15 "$OUT/pytest.txt"
fi
if has sanitize; then
  timeout 400 python3 "$SRC/tests/sanitize.py" --timeout 150 > "$OUT/sanitize.txt" 2>&1; log "sanitize rc=$?"
  tail -9 "$OUT/sanitize.txt"
fi
if has bench; then
  "${profile[@]}" python3 -m mixgemm.cli bench --shapes llama3-8b,llama3-70b --m ${BENCH_M:-1,16,64,256,1024,4096} \
    --vs ${BENCH_VS:-cublas,tinygemm,fbgemm,gemlite} --graph --markdown "$OUT/bench.md" --json "$OUT/bench.json" --plot "$OUT/bench.png" \
    >> "$OUT/log.txt" 2>&1; log "bench rc=$?"
  cat "$OUT/bench.md"
fi
if has layer; then
  "${profile[@]}" python3 -m mixgemm.cli bench --layer llama3-8b --m 1,16 --markdown "$OUT/layer.md" \
    >> "$OUT/log.txt" 2>&1; log "layer rc=$?"
  cat "$OUT/layer.md"
fi
if has sweep; then
  "${profile[@]}" python3 -m mixgemm.cli bench --m 1,4,16,64,256,2048 --vs cublas,tinygemm,fbgemm \
    --shapes ${SWEEP_SHAPES:-4608:3584,3584:4608,37888:3584,3584:18944,18432:16384,2048:1792,5120:5120,13824:5120,5120:13824,1536:8960,8960:1536,1792:8192} \
    --markdown "$OUT/sweep.md" --json "$OUT/sweep.json" >> "$OUT/log.txt" 2>&1; log "sweep rc=$?"
  cat "$OUT/sweep.md"
fi
if has ncu; then
  timeout 240 ncu --kernel-name regex:decode --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section LaunchStats --section Occupancy python3 "$SRC/tools/ncu_decode.py" > "$OUT/ncu.txt" 2>&1
  log "ncu rc=$?"
  grep -E "^  [0-9]|decode_gemm|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Duration|Grid Size|Registers|Achieved Occupancy|Theoretical Occupancy|Block Limit" "$OUT/ncu.txt" | head -40
fi
